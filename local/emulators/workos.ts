/**
 * A local, wire-compatible emulator of WorkOS User Management (AuthKit), for tests and the local
 * server. Local tooling only: it lives outside `supabase/functions/` and is never deployed.
 *
 * It answers what `@workos-inc/node` 11 sends once pointed at it with
 * `{ apiHostname: "127.0.0.1", port, https: false }`:
 *
 * - `GET  /user_management/authorize?client_id&redirect_uri&response_type=code&provider=authkit&state
 *   &code_challenge&code_challenge_method=S256` → a small HTML sign-in page (real WorkOS redirects to
 *   the hosted AuthKit domain; the emulator serves the page itself). An unknown `client_id` or a bad
 *   request is a 400 error page. `login_hint` pre-fills the email field.
 * - `POST /user_management/authorize?<the same query>` with form fields `email`, `email_verified`
 *   (`true` | `false`), optional `first_name`, `last_name` → `302 redirect_uri?code=…&state=…`; with
 *   `decision=deny` → `302 redirect_uri?error=access_denied&error_description=…&state=…`. This is
 *   how tests drive the page without a browser (see `signIn`).
 * - `POST /user_management/authenticate` (JSON or form body: grant_type `authorization_code`,
 *   client_id, client_secret = the API key, code, code_verifier) → `{ user, access_token,
 *   refresh_token, authentication_method }`. Codes are single-use (any attempt consumes one) and
 *   live 10 minutes; PKCE is S256 only. A bad code or verifier is 400 `{ error: "invalid_grant",
 *   error_description }`, an unknown client 400 and a wrong secret 401 `{ error: "invalid_client" }`.
 *   The access token is an RS256 JWT (5 minutes) with `iss`, `sub` (user id), `sid` (session id),
 *   `jti`, `iat`, `exp`, signed by a key generated at start.
 * - `GET  /sso/jwks/{clientId}` → `{ keys: [ the public JWK ] }`.
 * - `POST /user_management/sessions/revoke` `{ session_id }` (Bearer API key) → 200 `{}`; an unknown
 *   session is 404.
 * - `GET  /user_management/sessions/logout?session_id&return_to` → ends the session, `302 return_to`.
 *
 * The same email always gets the same user id (derived from the email), even across restarts;
 * `userOverrides` lays raw fields over the user in authenticate answers (profiles a hostile or
 * broken identity provider could send).
 * `failWith` makes every API answer (authenticate, revoke, JWKS, or those in `failEndpoints`; never
 * the sign-in page) a 500 or hang until the emulator closes, for
 * provider-down tests.
 */
import { exportJWK, generateKeyPair, SignJWT } from "jose";

/** How the emulator fails its API answers: `"error"` is a 500, `"hang"` never answers. */
export type WorkosFailureMode = "error" | "hang";

/** The API endpoints `failWith` applies to. */
export type WorkosApiEndpoint = "authenticate" | "jwks" | "revoke";

/** The person typed into the emulated sign-in page. */
export interface WorkosEmulatorUser {
  email: string;
  emailVerified: boolean;
  firstName?: string;
  lastName?: string;
}

/** A running emulator. */
export interface WorkosEmulator {
  /** Base URL, `http://127.0.0.1:PORT`; use it as `WORKOS_API_URL`. */
  url: string;
  apiKey: string;
  clientId: string;
  /** The `iss` claim of the access tokens it issues: `${url}/user_management/${clientId}`. */
  issuer: string;
  /** Requests received per endpoint (`authorize` counts page loads, not form posts). */
  hits: { authorize: number; authenticate: number; jwks: number; revoke: number; logout: number };
  /** Session ids ended by revoke or logout. */
  revokedSessions: Set<string>;
  /** Current failure mode of the API endpoints; assign `null` to recover. */
  failWith: WorkosFailureMode | null;
  /** Which endpoints `failWith` applies to; default all three. */
  failEndpoints: WorkosApiEndpoint[];
  /**
   * Raw fields laid over the `user` of every authenticate answer, for profiles the sign-in page
   * cannot produce (an invalid email, a number as a name); `null` (the default) sends users as
   * they are.
   */
  userOverrides: Record<string, unknown> | null;
  /**
   * Drives the hosted page without a browser: loads `authorizeUrl`, submits the form as `user`,
   * and returns the redirect `Location` (the `redirect_uri` with `code` and `state`).
   */
  signIn(authorizeUrl: string, user: WorkosEmulatorUser): Promise<string>;
  close(): Promise<void>;
}

/** Options of `startWorkosEmulator`. */
export interface WorkosEmulatorOptions {
  /** Port on 127.0.0.1; default 0, a free one. */
  port?: number;
  apiKey?: string;
  clientId?: string;
  failWith?: WorkosFailureMode | null;
  /** Clock in milliseconds, injectable so tests can expire codes without sleeping. */
  now?: () => number;
}

const codeTtlMilliseconds = 10 * 60 * 1000; // 10 minutes
const accessTokenTtlSeconds = 5 * 60; // 5 minutes, as WorkOS issues them

interface PendingCode {
  clientId: string;
  codeChallenge: string | null;
  userId: string;
  expiresAt: number;
}

interface UserRecord {
  id: string;
  email: string;
  emailVerified: boolean;
  firstName: string | null;
  lastName: string | null;
  createdAt: string;
  updatedAt: string;
  lastSignInAt: string | null;
}

/**
 * Starts the emulator on 127.0.0.1.
 *
 * @example
 * ```ts
 * const workos = await startWorkosEmulator();
 * // WORKOS_API_URL=workos.url, WORKOS_API_KEY=workos.apiKey, WORKOS_CLIENT_ID=workos.clientId
 * await workos.close();
 * ```
 */
export async function startWorkosEmulator(
  options: WorkosEmulatorOptions = {},
): Promise<WorkosEmulator> {
  const apiKey = options.apiKey ?? "sk_test_emulator";
  const clientId = options.clientId ?? "client_01EMULATOR0000000000000000";
  const now = options.now ?? Date.now;

  const { privateKey, publicKey } = await generateKeyPair("RS256");
  const kid = `sso_oidc_key_pair_${ulid(Date.now())}`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };

  const users = new Map<string, UserRecord>(); // by lower-cased email
  const codes = new Map<string, PendingCode>();
  const sessions = new Map<string, { userId: string }>();
  const hangingRequests = new Set<() => void>();

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} },
    handle,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const issuer = `${url}/user_management/${clientId}`;
  const emulator: WorkosEmulator = {
    url,
    apiKey,
    clientId,
    issuer,
    hits: { authorize: 0, authenticate: 0, jwks: 0, revoke: 0, logout: 0 },
    revokedSessions: new Set(),
    failWith: options.failWith ?? null,
    failEndpoints: ["authenticate", "jwks", "revoke"],
    userOverrides: null,
    signIn,
    close,
  };
  return emulator;

  async function handle(request: Request): Promise<Response> {
    const { pathname, searchParams } = new URL(request.url);
    if (pathname === "/user_management/authorize") {
      if (request.method === "GET") {
        emulator.hits.authorize++;
        return authorizePage(searchParams);
      }
      if (request.method === "POST") return submitAuthorize(searchParams, request);
      return json(405, { message: "Method Not Allowed" });
    }
    if (pathname === "/user_management/sessions/logout" && request.method === "GET") {
      emulator.hits.logout++;
      return logout(searchParams);
    }

    if (pathname === "/user_management/authenticate" && request.method === "POST") {
      emulator.hits.authenticate++;
      return failure("authenticate") ?? await authenticate(request);
    }
    if (pathname === "/user_management/sessions/revoke" && request.method === "POST") {
      emulator.hits.revoke++;
      return failure("revoke") ?? await revoke(request);
    }
    const jwksClientId = pathname.match(/^\/sso\/jwks\/([^/]+)$/)?.[1];
    if (jwksClientId !== undefined && request.method === "GET") {
      emulator.hits.jwks++;
      return failure("jwks") ??
        (jwksClientId === clientId ? json(200, { keys: [publicJwk] }) : notFound());
    }
    return notFound();
  }

  function failure(endpoint: WorkosApiEndpoint): Promise<Response> | null {
    if (!emulator.failEndpoints.includes(endpoint)) return null;
    if (emulator.failWith === "error") {
      return Promise.resolve(json(500, { message: "Internal Server Error" }));
    }
    if (emulator.failWith === "hang") {
      // Answers only when the emulator closes, so that shutdown never waits on it.
      return new Promise((resolve) => {
        hangingRequests.add(() => resolve(json(503, { message: "Service Unavailable" })));
      });
    }
    return null;
  }

  function authorizeProblem(params: URLSearchParams): string | null {
    if (params.get("client_id") !== clientId) return "Invalid client_id.";
    const redirectUri = params.get("redirect_uri");
    if (!redirectUri || !URL.canParse(redirectUri)) return "Invalid redirect_uri.";
    if (params.get("response_type") !== "code") return "response_type must be code.";
    if (!params.get("provider") && !params.get("connection_id") && !params.get("organization_id")) {
      return "One of provider, connection_id or organization_id is required.";
    }
    if (params.has("code_challenge") && params.get("code_challenge_method") !== "S256") {
      return "code_challenge_method must be S256.";
    }
    return null;
  }

  function authorizePage(params: URLSearchParams): Response {
    const problem = authorizeProblem(params);
    if (problem) return errorPage(problem);
    const email = escapeHtml(params.get("login_hint") ?? "");
    return html(
      200,
      "Sign in",
      `<h1>Sign in</h1>
<p class="muted">WorkOS emulator: any email signs in, nothing leaves this machine.</p>
<form method="post">
  <label><span>Email</span>
    <input type="email" name="email" value="${email}" autocomplete="email" required autofocus></label>
  <div class="row">
    <label><span>First name</span><input name="first_name" autocomplete="given-name"></label>
    <label><span>Last name</span><input name="last_name" autocomplete="family-name"></label>
  </div>
  <fieldset>
    <legend>Email verified</legend>
    <label class="choice"><input type="radio" name="email_verified" value="true" checked> yes</label>
    <label class="choice"><input type="radio" name="email_verified" value="false"> no</label>
  </fieldset>
  <div class="buttons">
    <button class="primary" name="decision" value="allow">Sign in</button>
    <button name="decision" value="deny" formnovalidate>Cancel</button>
  </div>
</form>`,
    );
  }

  async function submitAuthorize(params: URLSearchParams, request: Request): Promise<Response> {
    const problem = authorizeProblem(params);
    if (problem) return errorPage(problem);
    const form = new URLSearchParams(await request.text());
    const location = new URL(params.get("redirect_uri")!);
    const state = params.get("state");
    if (form.get("decision") === "deny") {
      location.searchParams.set("error", "access_denied");
      location.searchParams.set("error_description", "The user cancelled the sign-in.");
    } else {
      const email = form.get("email")?.trim() ?? "";
      if (!/^[^\s@]+@[^\s@]+$/.test(email)) return errorPage("A valid email is required.");
      const user = await upsertUser({
        email,
        emailVerified: form.get("email_verified") === "true",
        firstName: form.get("first_name")?.trim() || undefined,
        lastName: form.get("last_name")?.trim() || undefined,
      });
      const code = randomToken(24);
      codes.set(code, {
        clientId,
        codeChallenge: params.get("code_challenge"),
        userId: user.id,
        expiresAt: now() + codeTtlMilliseconds,
      });
      location.searchParams.set("code", code);
    }
    if (state !== null) location.searchParams.set("state", state);
    return new Response(null, { status: 302, headers: { location: location.href } });
  }

  async function upsertUser(input: WorkosEmulatorUser): Promise<UserRecord> {
    const key = input.email.toLowerCase();
    const timestamp = new Date(now()).toISOString();
    const existing = users.get(key);
    const user: UserRecord = {
      id: existing?.id ?? await userIdFor(key),
      email: input.email,
      emailVerified: input.emailVerified || (existing?.emailVerified ?? false),
      firstName: input.firstName ?? existing?.firstName ?? null,
      lastName: input.lastName ?? existing?.lastName ?? null,
      createdAt: existing?.createdAt ?? timestamp,
      updatedAt: timestamp,
      lastSignInAt: existing?.lastSignInAt ?? null,
    };
    users.set(key, user);
    return user;
  }

  async function authenticate(request: Request): Promise<Response> {
    const body = await readBody(request);
    if (body.grant_type !== "authorization_code") {
      return json(400, {
        error: "unsupported_grant_type",
        error_description: "The emulator only supports grant_type authorization_code.",
      });
    }
    if (body.client_id !== clientId) {
      return json(400, { error: "invalid_client", error_description: "Invalid client ID." });
    }
    if (!(await sameSecret(body.client_secret ?? "", apiKey))) {
      return json(401, { error: "invalid_client", error_description: "Invalid client secret." });
    }

    const code = body.code ?? "";
    const pending = codes.get(code);
    codes.delete(code); // single use: any attempt, good or bad, consumes the code
    if (!pending || pending.clientId !== body.client_id || pending.expiresAt <= now()) {
      return invalidGrant(`The code '${code}' has expired or is invalid.`);
    }
    const verifier = body.code_verifier;
    if (pending.codeChallenge !== null) {
      if (!verifier || (await s256(verifier)) !== pending.codeChallenge) {
        return invalidGrant("The code_verifier does not match the code_challenge.");
      }
    } else if (verifier) {
      return invalidGrant("A code_verifier was sent for a code issued without a code_challenge.");
    }

    const user = [...users.values()].find((candidate) => candidate.id === pending.userId)!;
    const issuedAt = Math.floor(now() / 1000);
    user.lastSignInAt = new Date(issuedAt * 1000).toISOString();
    const sessionId = `session_${ulid(now())}`;
    sessions.set(sessionId, { userId: user.id });
    const accessToken = await new SignJWT({ sid: sessionId, jti: ulid(now()) })
      .setProtectedHeader({ alg: "RS256", kid })
      .setIssuer(issuer)
      .setSubject(user.id)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + accessTokenTtlSeconds)
      .sign(privateKey);
    return json(200, {
      user: { ...userJson(user), ...emulator.userOverrides },
      access_token: accessToken,
      refresh_token: randomToken(24),
      authentication_method: "MagicAuth",
    });
  }

  async function revoke(request: Request): Promise<Response> {
    const presented = request.headers.get("authorization")?.replace(/^Bearer /, "") ?? "";
    if (!(await sameSecret(presented, apiKey))) return json(401, { message: "Unauthorized" });
    const sessionId = (await readBody(request)).session_id ?? "";
    if (!sessions.has(sessionId)) {
      return json(404, {
        code: "entity_not_found",
        message: `Session not found: '${sessionId}'.`,
        entity_id: sessionId,
      });
    }
    emulator.revokedSessions.add(sessionId);
    return json(200, {});
  }

  function logout(params: URLSearchParams): Response {
    const sessionId = params.get("session_id");
    if (!sessionId) return errorPage("session_id is required.");
    if (sessions.has(sessionId)) emulator.revokedSessions.add(sessionId);
    const returnTo = params.get("return_to");
    if (returnTo && URL.canParse(returnTo)) {
      return new Response(null, { status: 302, headers: { location: returnTo } });
    }
    return html(200, "Signed out", `<h1>Signed out</h1><p class="muted">WorkOS emulator</p>`);
  }

  async function signIn(authorizeUrl: string, user: WorkosEmulatorUser): Promise<string> {
    const page = await fetch(authorizeUrl);
    const pageText = await page.text();
    if (page.status !== 200) {
      throw new Error(`Cannot sign in: the authorize page answered ${page.status}: ${pageText}`);
    }
    const form = new URLSearchParams({
      email: user.email,
      email_verified: String(user.emailVerified),
      first_name: user.firstName ?? "",
      last_name: user.lastName ?? "",
      decision: "allow",
    });
    const answer = await fetch(authorizeUrl, { method: "POST", body: form, redirect: "manual" });
    const answerText = await answer.text();
    const location = answer.headers.get("location");
    if (answer.status !== 302 || location === null) {
      throw new Error(`Cannot sign in: the form answered ${answer.status}: ${answerText}`);
    }
    return location;
  }

  async function close(): Promise<void> {
    for (const release of hangingRequests) release();
    hangingRequests.clear();
    await server.shutdown();
  }
}

function userJson(user: UserRecord) {
  const name = [user.firstName, user.lastName].filter(Boolean).join(" ");
  return {
    object: "user",
    id: user.id,
    email: user.email,
    email_verified: user.emailVerified,
    first_name: user.firstName,
    last_name: user.lastName,
    name: name || null,
    profile_picture_url: null,
    last_sign_in_at: user.lastSignInAt,
    locale: null,
    created_at: user.createdAt,
    updated_at: user.updatedAt,
    external_id: null,
    metadata: {},
  };
}

async function readBody(request: Request): Promise<Record<string, string | undefined>> {
  const text = await request.text();
  if (request.headers.get("content-type")?.includes("application/x-www-form-urlencoded")) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    const parsed = JSON.parse(text);
    if (parsed === null || typeof parsed !== "object") return {};
    return Object.fromEntries(
      Object.entries(parsed).filter(([, value]) => typeof value === "string"),
    ) as Record<string, string>;
  } catch {
    return {};
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "x-request-id": crypto.randomUUID() },
  });
}

function invalidGrant(description: string): Response {
  return json(400, { error: "invalid_grant", error_description: description });
}

function notFound(): Response {
  return json(404, { message: "Not Found" });
}

/**
 * A page of the emulator, styled like the local console (local/console/style.css) so that a sign-in
 * through it looks like one product; everything inline, as the page is served from its own origin.
 */
function html(status: number, title: string, body: string): Response {
  return new Response(
    `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
      `<meta name="viewport" content="width=device-width, initial-scale=1">` +
      `<meta name="color-scheme" content="light dark">` +
      `<title>${escapeHtml(title)} · WorkOS emulator</title>` +
      `<link rel="icon" href="data:image/svg+xml,${encodeURIComponent(pageIcon)}">` +
      `<style>${pageStyle}</style></head>` +
      `<body><main class="card"><p class="brand">${pageIcon}<span>Platform auth</span>` +
      `<span class="tag">WorkOS emulator</span></p>${body}</main></body></html>`,
    {
      status,
      headers: {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        // The form posts to this page, which redirects to any redirect_uri: no form-action rule.
        "content-security-policy":
          "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
      },
    },
  );
}

function errorPage(message: string): Response {
  return html(400, "Error", `<h1>Cannot sign in</h1><p class="alert">${escapeHtml(message)}</p>`);
}

const pageIcon =
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true">` +
  `<rect width="32" height="32" rx="8" fill="#4f46e5"/>` +
  `<circle cx="12" cy="16" r="5.5" fill="none" stroke="#fff" stroke-width="3"/>` +
  `<path d="M17.5 16H26M22.5 16v4M26 16v3" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round"/></svg>`;

const pageStyle = `
:root{--bg:#f5f6f8;--card:#fff;--text:#16181d;--muted:#5d6370;--line:#e2e5ea;--accent:#4f46e5;
--accent-text:#fff;--danger:#c52b2b;--danger-soft:#fdecec;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#111318;--card:#1a1d24;--text:#e8eaef;--muted:#9aa1ae;
--line:#2b303a;--accent:#8b85ff;--accent-text:#0f1020;--danger:#ff7b7b;--danger-soft:#3a1f22}}
*,*::before,*::after{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);overflow-wrap:anywhere;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.card{max-width:26rem;margin:3rem auto;background:var(--card);border:1px solid var(--line);
border-radius:12px;padding:1.4rem}
@media (max-width:480px){.card{margin:1rem .75rem;padding:1rem}}
.brand{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap;margin:0 0 1.2rem;font-weight:600}
.tag{font-size:.7rem;font-weight:700;text-transform:uppercase;letter-spacing:.06em;padding:.1rem .4rem;
border-radius:4px;background:var(--accent);color:var(--accent-text)}
h1{font-size:1.3rem;margin:0}p{margin:.3rem 0 1rem}.muted{color:var(--muted);font-size:.9rem}
form{display:grid;gap:.8rem}label>span,legend{display:block;font-size:.85rem;color:var(--muted);margin-bottom:.2rem}
.row{display:flex;flex-wrap:wrap;gap:.8rem}.row>label{flex:1 1 9rem;min-width:0}
input:not([type=radio]){display:block;width:100%;min-width:0;min-height:2.4rem;padding:.4rem .6rem;
border:1px solid var(--line);border-radius:8px;background:var(--bg);font:inherit;color:inherit}
fieldset{border:0;margin:0;padding:0}.choice{display:inline-flex;gap:.35rem;align-items:center;margin-right:1rem}
.buttons{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.4rem}
button{flex:1 1 auto;font:inherit;color:inherit;cursor:pointer;min-height:2.4rem;padding:.45rem .9rem;
border:1px solid var(--line);border-radius:8px;background:var(--card)}
button.primary{background:var(--accent);border-color:var(--accent);color:var(--accent-text);font-weight:600}
button:focus-visible,input:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
.alert{padding:.75rem .9rem;border-radius:12px;background:var(--danger-soft);color:var(--danger)}
`;

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function sha256(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value)));
}

async function s256(verifier: string): Promise<string> {
  return base64Url(await sha256(verifier));
}

/** Compares digests so the time taken does not depend on where the secrets differ. */
async function sameSecret(presented: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([sha256(presented), sha256(expected)]);
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

async function userIdFor(lowerCasedEmail: string): Promise<string> {
  return `user_${crockford(await sha256(`workos-emulator:${lowerCasedEmail}`), 26)}`;
}

function base64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function randomToken(byteLength: number): string {
  return base64Url(crypto.getRandomValues(new Uint8Array(byteLength)));
}

const crockfordAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** The first `length` 5-bit groups of `bytes`, in Crockford base32 (the alphabet of ULIDs). */
function crockford(bytes: Uint8Array, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) {
    const bit = i * 5;
    const pair = (bytes[bit >> 3] << 8) | (bytes[(bit >> 3) + 1] ?? 0);
    out += crockfordAlphabet[(pair >> (11 - (bit & 7))) & 31];
  }
  return out;
}

/** A ULID, the shape of WorkOS ids: 48-bit millisecond time then 80 random bits. */
function ulid(milliseconds: number): string {
  let time = "";
  for (let i = 0, rest = milliseconds; i < 10; i++, rest = Math.floor(rest / 32)) {
    time = crockfordAlphabet[rest % 32] + time;
  }
  return time + crockford(crypto.getRandomValues(new Uint8Array(10)), 16);
}
