/**
 * The sign-in gateway's client: WorkOS and email-OTP sign-in, a stored session, access tokens that
 * refresh themselves, and the workspace calls. One dependency-free ES module for browsers, React
 * Native and Deno; nothing here touches `window` until a method needs it.
 *
 * Browser (a web console), session kept in `localStorage`:
 *
 * ```ts
 * import { createAuthClient } from "./client/mod.ts";
 *
 * const auth = createAuthClient({
 *   functionsUrl: "https://<ref>.supabase.co/functions/v1",
 *   apiKey: "sb_publishable_…",
 *   storage: localStorage,
 * });
 * const back = await auth.consumeWorkOSCallback(); // on the page WorkOS returns to
 * if (back?.error) showError(back.error_description);
 * if (!(await auth.getSession())) await auth.signInWithWorkOS({ returnTo: "/dashboard" });
 * const { person, workspaces } = await auth.me();
 * ```
 *
 * React Native, session kept in AsyncStorage, email OTP:
 *
 * ```ts
 * import AsyncStorage from "@react-native-async-storage/async-storage";
 * import { createAuthClient } from "./client/mod.ts";
 *
 * const auth = createAuthClient({ functionsUrl, apiKey, storage: AsyncStorage });
 * const { method_id } = await auth.sendOtp(email);
 * await auth.verifyOtp(method_id, code);
 * const db = createClient(SUPABASE_URL, apiKey, { accessToken: auth.accessToken });
 * ```
 *
 * @module
 */

/** A person as the functions describe them. */
export interface Person {
  id: string;
  email: string | null;
  display_name: string | null;
  created_at: string;
}

/** A member's role in a workspace, strongest first. */
export type Role = "owner" | "admin" | "member";

/**
 * The stored session: the last token response, with the person when it is known (a WorkOS
 * sign-in only tells the person's id until `me()` or a refresh).
 */
export interface Session {
  access_token: string;
  token_type: "bearer";
  /** Lifetime of `access_token` in seconds, as answered. */
  expires_in: number;
  /** When `access_token` expires, in unix seconds. */
  expires_at: number;
  refresh_token: string;
  person_id: string | null;
  person: Person | null;
}

/**
 * A token response of `otp-verify`, `refresh` and `workspaces/{id}/switch` (SPEC §5). The switch
 * answers no `refresh_token`: the session keeps the one it has.
 */
export interface TokenResponse {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
  expires_at: number;
  refresh_token?: string;
  person?: Person;
}

/** What `verifyOtp()` answers: a token response with the person and whether they are new. */
export interface OtpVerifyResponse extends TokenResponse {
  refresh_token: string;
  person: Person;
  is_new_user: boolean;
}

/** What `consumeWorkOSCallback()` answers when the URL carried a sign-in result. */
export type CallbackResult =
  | { session: Session; error?: undefined; error_description?: undefined }
  | { session?: undefined; error: string; error_description: string };

/** `me()`: the person and every workspace they belong to. */
export interface MeResponse {
  person: Person;
  workspaces: { id: string; name: string; role: Role }[];
}

/** `workspaces()`: the person's workspaces, the token's current one marked. */
export interface WorkspacesResponse {
  workspaces: { id: string; name: string; role: Role; current: boolean }[];
}

/** A workspace member, as `members()` and `updateMember()` answer them. */
export interface Member {
  person_id: string;
  display_name: string | null;
  email: string | null;
  role: Role;
  joined_at: string;
}

/** An open invitation to a workspace. */
export interface Invitation {
  id: string;
  email: string;
  role: Role;
  expires_at: string;
}

/**
 * What the client tells `onAuthStateChange` listeners. `WORKSPACE_SWITCHED` follows
 * `switchWorkspace()`: the access token changed (new current workspace), the refresh token did not.
 */
export type AuthEvent = "SIGNED_IN" | "SIGNED_OUT" | "TOKEN_REFRESHED" | "WORKSPACE_SWITCHED";

/** A listener of `onAuthStateChange`; `session` is null after `SIGNED_OUT`. */
export type AuthListener = (event: AuthEvent, session: Session | null) => void;

/**
 * Where the session is kept: anything with `getItem`, `setItem` and `removeItem`, synchronous
 * (`localStorage`, {@linkcode memoryStorage}) or returning promises (React Native's AsyncStorage).
 */
export interface AuthStorage {
  getItem(key: string): string | null | undefined | Promise<string | null | undefined>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
}

/** The part of the Web Locks API the client uses (`navigator.locks`). */
export interface LocksLike {
  request<T>(name: string, callback: (lock: unknown) => Promise<T>): Promise<T>;
}

/** The `fetch` the client calls: the global one by default, a fake in tests. */
export type FetchLike = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/** A `storage` event as browsers deliver it to other tabs. */
export interface StorageEventLike {
  key: string | null;
  oldValue: string | null;
  newValue: string | null;
  storageArea: unknown;
}

/**
 * A listener `addEventListener` accepts. `any` so that a DOM `window` (whose listeners take `Event`)
 * fits without this module naming DOM types, which React Native's typings lack.
 */
// deno-lint-ignore no-explicit-any
export type EventListenerLike = (event: any) => void;

/**
 * The browser globals the client may use, each optional: `globalThis` by default. Tests and
 * unusual hosts pass their own; pass `null` to use none.
 */
export interface WindowLike {
  location?: { href: string };
  history?: { replaceState(data: unknown, unused: string, url?: string | null): void };
  addEventListener?(type: string, listener: EventListenerLike): void;
  removeEventListener?(type: string, listener: EventListenerLike): void;
}

/** Options of {@linkcode createAuthClient}; checked once, when the client is built. */
export interface AuthClientOptions {
  /** The functions' base URL, e.g. `https://<ref>.supabase.co/functions/v1`. */
  functionsUrl: string;
  /** A publishable key (`sb_publishable_…`) or a legacy anon JWT, sent as `apikey` on every call. */
  apiKey: string;
  /** Where the session is kept; {@linkcode memoryStorage} by default (gone on reload). */
  storage?: AuthStorage;
  /** The storage key of the session, and the name of its refresh lock. */
  storageKey?: string;
  /** The `fetch` to call; the global `fetch` by default. */
  fetch?: FetchLike;
  /** The clock, in milliseconds since the epoch; `Date.now` by default. */
  now?: () => number;
  /** Web Locks for one refresh across tabs; `navigator.locks` when present. `null`: none. */
  locks?: LocksLike | null;
  /** Browser globals (`location`, `history`, `storage` events); `globalThis` by default. */
  window?: WindowLike | null;
}

/** The client {@linkcode createAuthClient} builds. Its methods need no `this`: pass them around. */
export interface AuthClient {
  /**
   * Starts a WorkOS sign-in: asks `workos-login` for the AuthKit URL, sends the browser there
   * (when there are `location` and `history`), and answers the URL (a React Native app opens it
   * itself, e.g. in an auth session browser).
   */
  signInWithWorkOS(options?: { returnTo?: string }): Promise<string>;
  /**
   * Reads the sign-in result from a URL's fragment (`location.href` by default): stores the
   * session and tells listeners `SIGNED_IN`, or answers the error. Clears the fragment from the
   * address bar either way. Null when the fragment holds neither.
   */
  consumeWorkOSCallback(url?: string): Promise<CallbackResult | null>;
  /** Sends a one-time code to `email`; answers the `method_id` that `verifyOtp` needs. */
  sendOtp(email: string): Promise<{ method_id: string }>;
  /** Checks a one-time code; stores the session and tells listeners `SIGNED_IN`. */
  verifyOtp(methodId: string, code: string): Promise<OtpVerifyResponse>;
  /** The stored session, or null when signed out. Never calls the server. */
  getSession(): Promise<Session | null>;
  /**
   * A usable access token: the stored one, refreshed first when less than 60 s remain. Null when
   * signed out. Rejects with an {@linkcode AuthError} when the session was revoked (and signs out).
   * Fits supabase-js: `createClient(url, key, { accessToken: auth.accessToken })`.
   */
  accessToken(): Promise<string | null>;
  /**
   * `fetch` with the session's bearer and the `apikey`; relative inputs resolve against
   * `functionsUrl`. Both are sent only to `functionsUrl`'s origin (the project: functions,
   * PostgREST, Storage); a URL elsewhere is fetched as given. A 401 `TOKEN_EXPIRED` is refreshed and retried once. Answers the response
   * whatever its status; rejects only when the server cannot be reached (`NETWORK_ERROR`) or when
   * the refresh it needed failed (a revoked session signs out, as in `accessToken()`).
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** `GET me`. */
  me(): Promise<MeResponse>;
  /** `GET workspaces`. */
  workspaces(): Promise<WorkspacesResponse>;
  /**
   * `POST workspaces/{id}/switch`: makes `id` the token's current workspace. Keeps the refresh
   * token, stores the new access token, and tells listeners `WORKSPACE_SWITCHED`.
   */
  switchWorkspace(workspaceId: string): Promise<Session>;
  /** `GET workspaces/{id}/members`. */
  members(workspaceId: string): Promise<{ members: Member[] }>;
  /** `POST workspaces/{id}/invitations`: invites (or re-invites) `email` with `role`. */
  invite(workspaceId: string, invitation: { email: string; role: Role }): Promise<Invitation>;
  /** `GET workspaces/{id}/invitations`: the open invitations. */
  invitations(workspaceId: string): Promise<{ invitations: Invitation[] }>;
  /** `DELETE workspaces/{id}/invitations/{invitationId}`. */
  revokeInvitation(workspaceId: string, invitationId: string): Promise<null>;
  /** `PATCH workspaces/{id}/members/{personId}`: changes a member's role. */
  updateMember(workspaceId: string, personId: string, change: { role: Role }): Promise<Member>;
  /** `DELETE workspaces/{id}/members/{personId}`: removes a member (or leaves). */
  removeMember(workspaceId: string, personId: string): Promise<null>;
  /**
   * Revokes the session at the server (`POST logout`) and forgets it here whatever the server
   * said; tells listeners `SIGNED_OUT`. Answers WorkOS' logout URL to visit, or null.
   */
  signOut(): Promise<{ logout_url: string | null }>;
  /** Calls `listener` on every auth event; answers the function that stops it. */
  onAuthStateChange(listener: AuthListener): () => void;
}

/** Stable codes of {@linkcode AuthError}: the server's (SPEC §4) and the client's own. */
export type AuthErrorCode =
  | "NETWORK_ERROR"
  | "INVALID_RESPONSE"
  | "UNEXPECTED_STATUS"
  | "TOKEN_EXPIRED"
  | "SESSION_REVOKED"
  | "REFRESH_TOKEN_REUSED"
  | "INVALID_REFRESH_TOKEN"
  | "UNAUTHORIZED"
  | "SIGNED_OUT"
  // Any other server code; the intersection keeps the names above in editors' completions.
  | (string & Record<never, never>);

/**
 * A failed call: `status` and `code` from the server's `{ code, message }` answer and its
 * `x-request-id` (quote it when reporting a 500), or status 0 and `NETWORK_ERROR` when the server
 * was never reached.
 *
 * @example
 * ```ts
 * try {
 *   await auth.verifyOtp(methodId, code);
 * } catch (error) {
 *   if (error instanceof AuthError && error.code === "INVALID_CODE") askAgain();
 *   else throw error;
 * }
 * ```
 */
export class AuthError extends Error {
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The server's code, or the client's (`NETWORK_ERROR`, `INVALID_RESPONSE`, `UNEXPECTED_STATUS`). */
  readonly code: AuthErrorCode;
  /** The answer's `x-request-id`, when there was one. */
  readonly requestId: string | null;

  /** Builds the error; `options.cause` keeps the underlying failure. */
  constructor(
    message: string,
    options: { status: number; code: AuthErrorCode; requestId?: string | null; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AuthError";
    this.status = options.status;
    this.code = options.code;
    this.requestId = options.requestId ?? null;
  }
}

/**
 * A storage that lives as long as the page or process: the default. Give each client its own, or
 * share one between clients to share the session.
 *
 * @example
 * ```ts
 * const auth = createAuthClient({ functionsUrl, apiKey, storage: memoryStorage() });
 * ```
 */
export function memoryStorage(): AuthStorage {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

/** The default `storageKey`. */
export const DEFAULT_STORAGE_KEY = "platform-auth.session";

/** An access token with less than this left is refreshed before use. */
export const REFRESH_MARGIN_SECONDS = 60;

// Refresh answers that mean the session is over: signing out is the only way on.
const SESSION_ENDED_CODES = new Set([
  "SESSION_REVOKED",
  "REFRESH_TOKEN_REUSED",
  "INVALID_REFRESH_TOKEN",
]);

/**
 * Builds a client for the sign-in gateway's functions. Options are checked here, once; browser
 * globals are read only when a method needs them, so importing and building is safe anywhere.
 *
 * @example
 * ```ts
 * const auth = createAuthClient({
 *   functionsUrl: "https://<ref>.supabase.co/functions/v1",
 *   apiKey: "sb_publishable_…",
 *   storage: localStorage,
 * });
 * auth.onAuthStateChange((event, session) => console.log(event, session?.person_id));
 * ```
 */
export function createAuthClient(options: AuthClientOptions): AuthClient {
  const { functionsUrl, apiKey } = options;
  if (typeof functionsUrl !== "string" || !/^https?:\/\/[^/?#]+/i.test(functionsUrl)) {
    throw new TypeError("Cannot create the auth client: functionsUrl must be an http(s) URL");
  }
  if (typeof apiKey !== "string" || apiKey === "") {
    throw new TypeError("Cannot create the auth client: apiKey is missing");
  }
  const baseUrl = functionsUrl.replace(/\/+$/, "");
  const baseOrigin = originOf(baseUrl);
  const storage = options.storage ?? memoryStorage();
  const storageKey = options.storageKey ?? DEFAULT_STORAGE_KEY;
  const now = options.now ?? Date.now;
  const fetchImpl: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const lockName = `${storageKey}.refresh`;
  const listeners = new Set<AuthListener>();

  // Read at call time, not import time: React Native and Deno have no window, and a test or a
  // host may install one later.
  function browser(): WindowLike {
    if (options.window !== undefined) return options.window ?? {};
    return globalThis as unknown as WindowLike;
  }
  function locks(): LocksLike | null {
    if (options.locks !== undefined) return options.locks;
    const navigatorLocks = (globalThis as { navigator?: { locks?: LocksLike } }).navigator?.locks;
    return navigatorLocks ?? null;
  }

  // ---- the stored session ----

  async function readSession(): Promise<Session | null> {
    return parseSession(await storage.getItem(storageKey));
  }
  async function writeSession(session: Session): Promise<void> {
    await storage.setItem(storageKey, JSON.stringify(session));
  }
  async function removeSession(): Promise<void> {
    await storage.removeItem(storageKey);
  }
  function expiresSoon(session: Session): boolean {
    const nowSeconds = now() / 1000;
    return session.expires_at - nowSeconds < REFRESH_MARGIN_SECONDS;
  }

  function emit(event: AuthEvent, session: Session | null): void {
    for (const listener of [...listeners]) {
      try {
        listener(event, session);
      } catch (error) {
        // One faulty listener must not keep the others (or the sign-in) from completing.
        console.error("auth listener failed:", error);
      }
    }
  }

  // ---- HTTP ----

  function resolve(path: string): string {
    return /^[a-z][a-z0-9+.-]*:/i.test(path) ? path : `${baseUrl}/${path.replace(/^\/+/, "")}`;
  }

  function urlOf(input: RequestInfo | URL): string {
    if (isRequest(input)) return input.url;
    return input instanceof URL ? input.href : resolve(String(input));
  }

  /** Keys and tokens go only to the project that issued them, never to a URL someone passed in. */
  function isOurs(url: string): boolean {
    return originOf(url) === baseOrigin;
  }

  /**
   * One call. To our origin: the apikey always, and the user's bearer when there is one, else the
   * key as bearer (as supabase-js does). Elsewhere: the request as given.
   */
  async function send(
    input: RequestInfo | URL,
    init: RequestInit | undefined,
    bearer: string | null,
  ): Promise<Response> {
    const request = isRequest(input) ? input : null;
    const url = urlOf(input);
    const headers = new Headers(request?.headers);
    new Headers(init?.headers).forEach((value, name) => headers.set(name, value));
    if (isOurs(url)) {
      headers.set("apikey", apiKey);
      headers.set("authorization", `Bearer ${bearer ?? apiKey}`);
    }
    try {
      if (request) return await fetchImpl(new Request(request.clone(), { ...init, headers }));
      return await fetchImpl(url, { ...init, headers });
    } catch (error) {
      if ((error as { name?: string } | null)?.name === "AbortError") throw error;
      throw new AuthError("Cannot reach the auth server", {
        status: 0,
        code: "NETWORK_ERROR",
        cause: error,
      });
    }
  }

  /** A call that carries no user token (sign-in, refresh). */
  async function publicCall<T>(method: string, path: string, body?: unknown): Promise<T> {
    return await readJson<T>(await send(path, jsonInit(method, body), null));
  }

  /** A call with the user's bearer, through {@linkcode AuthClient.fetch}. */
  async function userCall<T>(method: string, path: string, body?: unknown): Promise<T> {
    return await readJson<T>(await authFetch(path, jsonInit(method, body)));
  }

  // ---- refresh ----

  let refreshing: Promise<Session | null> | null = null;
  /** Longer than this to get the lock means another tab held it (it was refreshing). */
  const lockWaitMs = 5;
  /** After such a wait, how often and how far apart storage is read again for its token. */
  const lockRereads = 10;
  const lockRereadMs = 20;

  /**
   * Refreshes the session whose access token `stale` is no longer good, one refresh at a time:
   * callers arriving meanwhile share it, and other tabs wait on the Web Lock of this storage key.
   */
  function refreshSession(stale: string): Promise<Session | null> {
    refreshing ??= withLock((waited) => refreshUnlessDone(stale, waited)).finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  /** Runs `task` holding the Web Lock, telling it whether it had to wait for another holder. */
  function withLock<T>(task: (waited: boolean) => Promise<T>): Promise<T> {
    const manager = locks();
    if (!manager) return task(false);
    const requested = performance.now();
    return manager.request(lockName, () => task(performance.now() - requested > lockWaitMs));
  }

  async function refreshUnlessDone(stale: string, waited: boolean): Promise<Session | null> {
    // Read again inside the lock: another tab may have refreshed while this one waited. Browsers
    // share localStorage between tabs a moment late, so after a wait a stale read is read again.
    let current = await readSession();
    for (let retry = 0; waited && current?.access_token === stale && retry < lockRereads; retry++) {
      await new Promise((resolve) => setTimeout(resolve, lockRereadMs));
      current = await readSession();
    }
    if (!current) return null;
    if (current.access_token !== stale && !expiresSoon(current)) return current;

    let answer: TokenResponse;
    try {
      answer = await postRefresh(current.refresh_token);
    } catch (error) {
      if (
        !(error instanceof AuthError && error.status === 401 && SESSION_ENDED_CODES.has(error.code))
      ) {
        throw error;
      }
      const stored = await readSession();
      // Someone signed in again meanwhile (a lock-less host): that session is not ours to end.
      if (stored && stored.refresh_token !== current.refresh_token) return stored;
      if (stored) {
        await removeSession();
        emit("SIGNED_OUT", null);
      }
      throw error;
    }

    // Write only onto the session this refresh came from: a sign-out or a sign-in that happened
    // while the request was out must not be undone by it.
    const stored = await readSession();
    if (!stored) return null;
    if (stored.refresh_token !== current.refresh_token) return stored;
    const next = mergeTokens(stored, answer);
    await writeSession(next);
    emit("TOKEN_REFRESHED", next);
    return next;
  }

  async function postRefresh(refreshToken: string): Promise<TokenResponse> {
    try {
      return await publicCall<TokenResponse>("POST", "refresh", { refresh_token: refreshToken });
    } catch (error) {
      if (!(error instanceof AuthError && error.code === "NETWORK_ERROR")) throw error;
      // Once, at once: if the first request did reach the server, a repeat within 10 s is
      // answered with the same successor, so this cannot burn the session.
      return await publicCall<TokenResponse>("POST", "refresh", { refresh_token: refreshToken });
    }
  }

  // ---- the methods ----

  async function accessToken(): Promise<string | null> {
    const session = await readSession();
    if (!session) return null;
    if (!expiresSoon(session)) return session.access_token;
    try {
      const fresh = await refreshSession(session.access_token);
      return fresh?.access_token ?? null;
    } catch (error) {
      const ended = error instanceof AuthError && SESSION_ENDED_CODES.has(error.code);
      // A passing outage (network, 5xx) should not fail calls while the token still works.
      if (!ended && session.expires_at > now() / 1000) return session.access_token;
      throw error;
    }
  }

  async function authFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    if (!isOurs(urlOf(input))) return await send(input, init, null);
    const token = await accessToken();
    const response = await send(input, init, token);
    if (!token || response.status !== 401 || (await errorCode(response)) !== "TOKEN_EXPIRED") {
      return response;
    }
    // Our clock said the token was good, the server's did not: refresh once, retry once.
    const fresh = await refreshSession(token);
    if (!fresh) return response;
    await response.body?.cancel();
    return await send(input, init, fresh.access_token);
  }

  async function signInWithWorkOS(
    { returnTo }: { returnTo?: string } = {},
  ): Promise<string> {
    const query = returnTo === undefined ? "" : `return_to=${encodeURIComponent(returnTo)}&`;
    const { url } = await publicCall<{ url: string }>(
      "GET",
      `workos-login?${query}redirect=false`,
    );
    if (typeof url !== "string") throw invalidResponse();
    // A browser page has both; Deno run with --location has a location it cannot navigate.
    const { location, history } = browser();
    if (location && history) location.href = url;
    return url;
  }

  async function consumeWorkOSCallback(url?: string): Promise<CallbackResult | null> {
    const { location, history } = browser();
    const href = url ?? location?.href;
    if (!href) return null;
    const hashAt = href.indexOf("#");
    if (hashAt < 0) return null;
    const params = parseParams(href.slice(hashAt + 1));
    if (!params.has("access_token") && !params.has("error")) return null;

    // The tokens must not stay in the address bar, the history or a bookmark.
    if (history && location && withoutHash(location.href) === withoutHash(href)) {
      history.replaceState(null, "", pathAndQuery(href));
    }

    if (params.has("error")) {
      return {
        error: params.get("error") ?? "",
        error_description: params.get("error_description") ?? "",
      };
    }
    const session = sessionFromFragment(params);
    if (!session) {
      return { error: "INVALID_CALLBACK", error_description: "The sign-in answer is incomplete" };
    }
    await writeSession(session);
    emit("SIGNED_IN", session);
    return { session };
  }

  async function verifyOtp(methodId: string, code: string): Promise<OtpVerifyResponse> {
    const answer = await publicCall<OtpVerifyResponse>("POST", "otp-verify", {
      method_id: methodId,
      code,
    });
    const session = sessionFromTokens(answer, null);
    if (!session) throw invalidResponse();
    await writeSession(session);
    emit("SIGNED_IN", session);
    return answer;
  }

  async function switchWorkspace(workspaceId: string): Promise<Session> {
    // A refresh already out could land after the switch and bring back the old workspace.
    await refreshing?.catch(() => null);
    const answer = await userCall<TokenResponse>("POST", `${workspacePath(workspaceId)}/switch`);
    if (typeof answer?.access_token !== "string" || typeof answer.expires_at !== "number") {
      throw invalidResponse();
    }
    const stored = await readSession();
    if (!stored) {
      throw new AuthError("Signed out during the workspace switch", {
        status: 0,
        code: "SIGNED_OUT",
      });
    }
    const next = mergeTokens(stored, answer);
    await writeSession(next);
    emit("WORKSPACE_SWITCHED", next);
    return next;
  }

  async function signOut(): Promise<{ logout_url: string | null }> {
    let logoutUrl: string | null = null;
    try {
      if (await readSession()) {
        const answer = await userCall<{ logout_url?: string | null }>("POST", "logout");
        logoutUrl = typeof answer?.logout_url === "string" ? answer.logout_url : null;
      }
    } catch {
      // Signing out here must not depend on the server: an offline or revoked session is forgotten
      // all the same (a revoked one is already dead there).
    }
    const hadSession = (await readSession()) !== null;
    await removeSession();
    if (hadSession) emit("SIGNED_OUT", null);
    return { logout_url: logoutUrl };
  }

  // Other tabs' sign-in, refresh and sign-out, seen through `storage` events (localStorage only:
  // events name the storage area they changed). Listened to only while someone listens to us.
  function onStorage(event: StorageEventLike): void {
    if (event.storageArea !== storage) return;
    if (event.key !== null && event.key !== storageKey) return;
    const previous = event.key === null ? null : parseSession(event.oldValue);
    const next = event.key === null ? null : parseSession(event.newValue);
    if (!next) emit("SIGNED_OUT", null);
    else if (!previous || previous.person_id !== next.person_id) emit("SIGNED_IN", next);
    else if (previous.access_token !== next.access_token) emit("TOKEN_REFRESHED", next);
  }

  function onAuthStateChange(listener: AuthListener): () => void {
    const target = browser();
    if (listeners.size === 0) target.addEventListener?.("storage", onStorage);
    listeners.add(listener);
    return () => {
      if (!listeners.delete(listener)) return;
      if (listeners.size === 0) target.removeEventListener?.("storage", onStorage);
    };
  }

  return {
    signInWithWorkOS,
    consumeWorkOSCallback,
    sendOtp: (email) => publicCall("POST", "otp-send", { email }),
    verifyOtp,
    getSession: readSession,
    accessToken,
    fetch: authFetch,
    me: () => userCall("GET", "me"),
    workspaces: () => userCall("GET", "workspaces"),
    switchWorkspace,
    members: (id) => userCall("GET", `${workspacePath(id)}/members`),
    invite: (id, { email, role }) =>
      userCall("POST", `${workspacePath(id)}/invitations`, { email, role }),
    invitations: (id) => userCall("GET", `${workspacePath(id)}/invitations`),
    revokeInvitation: (id, invitationId) =>
      userCall("DELETE", `${workspacePath(id)}/invitations/${encodeURIComponent(invitationId)}`),
    updateMember: (id, personId, { role }) =>
      userCall("PATCH", `${workspacePath(id)}/members/${encodeURIComponent(personId)}`, { role }),
    removeMember: (id, personId) =>
      userCall("DELETE", `${workspacePath(id)}/members/${encodeURIComponent(personId)}`),
    signOut,
    onAuthStateChange,
  };
}

// ---- helpers (not exported) ----

function isRequest(input: unknown): input is Request {
  return typeof Request !== "undefined" && input instanceof Request;
}

function workspacePath(workspaceId: string): string {
  return `workspaces/${encodeURIComponent(workspaceId)}`;
}

function jsonInit(method: string, body: unknown): RequestInit {
  if (body === undefined) return { method };
  return { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

function invalidResponse(status = 200, requestId: string | null = null): AuthError {
  return new AuthError("The auth server's answer is not what was expected", {
    status,
    code: "INVALID_RESPONSE",
    requestId,
  });
}

/** The JSON of a 2xx answer (null for 204); anything else becomes an {@linkcode AuthError}. */
async function readJson<T>(response: Response): Promise<T> {
  const requestId = response.headers.get("x-request-id");
  if (!response.ok) {
    const body = await response.json().catch(() => null) as
      | { code?: unknown; message?: unknown }
      | null;
    const code = typeof body?.code === "string" ? body.code : "UNEXPECTED_STATUS";
    const message = typeof body?.message === "string"
      ? body.message
      : `The auth server answered ${response.status}`;
    throw new AuthError(message, { status: response.status, code, requestId });
  }
  if (response.status === 204) {
    await response.body?.cancel();
    return null as T;
  }
  try {
    return await response.json() as T;
  } catch {
    throw invalidResponse(response.status, requestId);
  }
}

/** The `code` of a JSON error answer, leaving the answer itself unread. */
async function errorCode(response: Response): Promise<string | null> {
  try {
    const body = await response.clone().json() as { code?: unknown } | null;
    return typeof body?.code === "string" ? body.code : null;
  } catch {
    return null;
  }
}

/** A stored session, or null for nothing or anything unreadable (a stale format, a hand edit). */
function parseSession(raw: string | null | undefined): Session | null {
  if (typeof raw !== "string" || raw === "") return null;
  try {
    const value = JSON.parse(raw) as Partial<Session> | null;
    if (
      typeof value?.access_token !== "string" || typeof value.refresh_token !== "string" ||
      typeof value.expires_at !== "number"
    ) return null;
    return {
      access_token: value.access_token,
      token_type: "bearer",
      expires_in: typeof value.expires_in === "number" ? value.expires_in : 0,
      expires_at: value.expires_at,
      refresh_token: value.refresh_token,
      person_id: typeof value.person_id === "string" ? value.person_id : null,
      person: value.person ?? null,
    };
  } catch {
    return null;
  }
}

/** A session from a full token response (sign-in), or null when a field is missing. */
function sessionFromTokens(answer: TokenResponse, personId: string | null): Session | null {
  if (
    typeof answer?.access_token !== "string" || typeof answer.refresh_token !== "string" ||
    typeof answer.expires_at !== "number" || !Number.isFinite(answer.expires_at)
  ) return null;
  return {
    access_token: answer.access_token,
    token_type: "bearer",
    expires_in: typeof answer.expires_in === "number" ? answer.expires_in : 0,
    expires_at: answer.expires_at,
    refresh_token: answer.refresh_token,
    person_id: answer.person?.id ?? personId,
    person: answer.person ?? null,
  };
}

/** `session` with a refresh's or a switch's tokens; a missing refresh_token keeps the old one. */
function mergeTokens(session: Session, answer: TokenResponse): Session {
  if (typeof answer?.access_token !== "string" || typeof answer.expires_at !== "number") {
    throw invalidResponse();
  }
  return {
    access_token: answer.access_token,
    token_type: "bearer",
    expires_in: typeof answer.expires_in === "number" ? answer.expires_in : session.expires_in,
    expires_at: answer.expires_at,
    refresh_token: typeof answer.refresh_token === "string"
      ? answer.refresh_token
      : session.refresh_token,
    person_id: answer.person?.id ?? session.person_id,
    person: answer.person ?? session.person,
  };
}

function sessionFromFragment(params: Map<string, string>): Session | null {
  const number = (name: string) => {
    const value = Number(params.get(name));
    return params.has(name) && Number.isFinite(value) ? value : undefined;
  };
  const expiresAt = number("expires_at");
  if (expiresAt === undefined) return null;
  return sessionFromTokens({
    access_token: params.get("access_token") as string,
    token_type: "bearer",
    expires_in: number("expires_in") ?? 0,
    expires_at: expiresAt,
    refresh_token: params.get("refresh_token") as string,
  }, params.get("person_id") || null);
}

// URL and URLSearchParams are incomplete in React Native, so fragments are parsed by hand.
function parseParams(text: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const pair of text.split("&")) {
    if (pair === "") continue;
    const at = pair.indexOf("=");
    const name = decode(at < 0 ? pair : pair.slice(0, at));
    if (name !== null && !params.has(name)) {
      params.set(name, decode(at < 0 ? "" : pair.slice(at + 1)) ?? "");
    }
  }
  return params;
}

function decode(text: string): string | null {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return null;
  }
}

/** `scheme://host[:port]`, lower-cased; URL's own parser is incomplete in React Native. */
function originOf(href: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(href)?.[0].toLowerCase() ?? "";
}

function withoutHash(href: string): string {
  const at = href.indexOf("#");
  return at < 0 ? href : href.slice(0, at);
}

function pathAndQuery(href: string): string {
  const rest = withoutHash(href).replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  return rest.startsWith("/") ? rest : `/${rest}`;
}
