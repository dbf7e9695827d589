/**
 * WorkOS AuthKit, reduced to the four things the sign-in functions need: the hosted sign-in URL,
 * the code exchange (with the WorkOS session id read from a verified access token), session
 * revocation and the logout URL. The only file that imports `@workos-inc/node`.
 *
 * Every provider call finishes within `timeoutMs` (default 10 s), retries included; failures come
 * back as values (`provider_error`, `false`), never as exceptions. Nothing here logs: the SDK's
 * errors can carry codes and tokens, so callers log only the reason returned.
 */
import { OauthException, WorkOS } from "@workos-inc/node";
import { createRemoteJWKSet, jwtVerify } from "jose";
import type { WorkosConfig } from "./config.ts";
import { profileEmail, profileName } from "./person.ts";

/**
 * The WorkOS settings this client uses (parsed from the environment by config.ts, SPEC §3):
 * `redirectUri` is the `workos-callback` function, `apiUrl` is WORKOS_API_URL (emulators put
 * loopback there). The cookie password and the redirect policy are the functions' business.
 */
export type WorkosClientConfig = Pick<
  WorkosConfig,
  "apiKey" | "clientId" | "redirectUri" | "apiUrl"
>;

/** What a code exchange yields. */
export type WorkosExchangeResult =
  | {
    ok: true;
    /** The profile, cleaned (profileName, profileEmail): nothing in it can fail a write. */
    user: {
      id: string;
      /** Null when WorkOS sent none, or one that is invalid or over 254 characters. */
      email: string | null;
      /** False whenever `email` is null. */
      emailVerified: boolean;
      firstName: string | null;
      lastName: string | null;
    };
    /** The `sid` claim of WorkOS's access token, verified against WorkOS's JWKS. */
    sessionId: string;
  }
  | { ok: false; reason: "invalid_grant" | "provider_error" };

/** The WorkOS client the functions use. */
export interface WorkosAuth {
  /** The AuthKit authorize URL (provider `authkit`, PKCE S256) carrying `state`. */
  authorizationUrl(input: { state: string; codeChallenge: string }): string;
  /**
   * Exchanges an authorization code. `invalid_grant` means WorkOS refused the code or verifier
   * (bad, expired, reused); `provider_error` means WorkOS failed, timed out or answered something
   * that does not verify.
   */
  exchangeCode(code: string, codeVerifier: string): Promise<WorkosExchangeResult>;
  /** Ends a WorkOS session; `false` when WorkOS refused or could not be reached. */
  revokeSession(sessionId: string): Promise<boolean>;
  /** WorkOS's logout URL for a session, which ends it and redirects to `returnTo`. */
  logoutUrl(sessionId: string, returnTo?: string): string;
}

/** Tuning of `createWorkosAuth`. */
export interface WorkosAuthOptions {
  /** Upper bound of each provider call, retries included; default 10000. */
  timeoutMs?: number;
  /** Retries of transient failures (network, 408, 429, 5xx); default 1, tests pass 0. */
  maxRetries?: number;
  /**
   * Accepted `iss` of WorkOS access tokens. Unset (the default, as in the SDK) skips the check:
   * WorkOS mints `https://api.workos.com` in older environments,
   * `https://api.workos.com/user_management/<clientId>` in newer ones, and the auth domain when a
   * custom one is set, so no single default is right everywhere.
   */
  issuer?: string | string[];
}

const defaultTimeoutMilliseconds = 10_000;
const defaultMaxRetries = 1;
const clockToleranceSeconds = 30;

// WorkOS ids are `user_` and a ULID; anything outside printable ASCII is no id of theirs.
const workosIdPattern = /^[\x21-\x7e]{1,255}$/;

const providerError = { ok: false, reason: "provider_error" } as const;
const invalidGrant = { ok: false, reason: "invalid_grant" } as const;
const deadlinePassed = Symbol("deadline passed");

/**
 * Builds the WorkOS client once per process: the SDK client and the remote JWKS (cached by jose,
 * so WorkOS's keys are fetched once, not per sign-in). Throws `TypeError` on a malformed `apiUrl`
 * or option, which config parsing is expected to have caught.
 *
 * @example
 * ```ts
 * const workos = createWorkosAuth(config.workos);
 * const url = workos.authorizationUrl({ state, codeChallenge });
 * const result = await workos.exchangeCode(code, codeVerifier);
 * if (!result.ok) return redirectWithError(result.reason);
 * ```
 */
export function createWorkosAuth(
  config: WorkosClientConfig,
  options: WorkosAuthOptions = {},
): WorkosAuth {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMilliseconds;
  const maxRetries = options.maxRetries ?? defaultMaxRetries;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new TypeError("Cannot create WorkOS client: timeoutMs must be a positive integer");
  }
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    throw new TypeError("Cannot create WorkOS client: maxRetries must be a non-negative integer");
  }
  const apiUrl = new URL(config.apiUrl);
  if (apiUrl.protocol !== "https:" && apiUrl.protocol !== "http:") {
    throw new TypeError("Cannot create WorkOS client: apiUrl must be an http(s) URL");
  }

  // The SDK's own timeout bounds one attempt; splitting the budget between attempts (less a small
  // margin) lets ordinary retries finish in time, and `withDeadline` caps the rest (backoff sleeps,
  // a Retry-After of up to 60 s).
  const marginMs = Math.min(100, Math.floor(timeoutMs / 10));
  const attemptTimeoutMs = Math.max(1, Math.floor((timeoutMs - marginMs) / (maxRetries + 1)));

  const workos = new WorkOS({
    apiKey: config.apiKey,
    clientId: config.clientId,
    apiHostname: apiUrl.hostname,
    port: apiUrl.port ? Number(apiUrl.port) : undefined,
    https: apiUrl.protocol === "https:",
    timeout: attemptTimeoutMs,
    maxRetries,
  });
  const jwks = createRemoteJWKSet(new URL(workos.userManagement.getJwksUrl(config.clientId)), {
    timeoutDuration: attemptTimeoutMs,
  });

  async function authenticate(code: string, codeVerifier: string): Promise<WorkosExchangeResult> {
    const response = await workos.userManagement.authenticateWithCode({
      clientId: config.clientId,
      code,
      codeVerifier,
    });
    const { user } = response;
    // The SDK's types say what WorkOS should send; the values are read as whatever came.
    const id: unknown = user?.id;
    if (typeof id !== "string" || !workosIdPattern.test(id)) return providerError;
    const sessionId = await verifiedSessionId(response.accessToken, id);
    if (sessionId === null) return providerError;
    const email = profileEmail(user.email);
    return {
      ok: true,
      user: {
        id,
        email,
        emailVerified: email !== null && user.emailVerified === true,
        firstName: profileName(user.firstName),
        lastName: profileName(user.lastName),
      },
      sessionId,
    };
  }

  /** The `sid` of a WorkOS access token whose signature, expiry and subject check out, else null. */
  async function verifiedSessionId(accessToken: string, userId: string): Promise<string | null> {
    try {
      const { payload } = await jwtVerify(accessToken, jwks, {
        algorithms: ["RS256"],
        clockTolerance: clockToleranceSeconds,
        ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
      });
      // WorkOS access tokens carry no `aud` by default; binding `sub` to the user WorkOS just
      // returned is the check that ties the session to this sign-in.
      if (payload.sub !== userId) return null;
      return typeof payload.sid === "string" && payload.sid !== "" ? payload.sid : null;
    } catch {
      return null;
    }
  }

  return {
    authorizationUrl({ state, codeChallenge }) {
      return workos.userManagement.getAuthorizationUrl({
        provider: "authkit",
        clientId: config.clientId,
        redirectUri: config.redirectUri,
        state,
        codeChallenge,
        codeChallengeMethod: "S256",
      });
    },

    async exchangeCode(code, codeVerifier) {
      if (code === "" || codeVerifier.trim() === "") return invalidGrant;
      try {
        const result = await withDeadline(authenticate(code, codeVerifier), timeoutMs);
        return result === deadlinePassed ? providerError : result;
      } catch (error) {
        // WorkOS answers a bad, expired or reused code (and a PKCE mismatch) with 400 invalid_grant.
        if (error instanceof OauthException && error.error === "invalid_grant") return invalidGrant;
        return providerError;
      }
    },

    async revokeSession(sessionId) {
      if (sessionId === "") return false;
      try {
        const revoked = workos.userManagement.revokeSession({ sessionId }).then(() => true);
        return (await withDeadline(revoked, timeoutMs)) === true;
      } catch {
        return false;
      }
    },

    logoutUrl(sessionId, returnTo) {
      return workos.userManagement.getLogoutUrl({ sessionId, returnTo });
    },
  };
}

/**
 * Settles with `work`, or with `deadlinePassed` after `milliseconds`. The work itself is not
 * cancelled (the SDK offers no signal); its per-attempt timeout ends it soon after.
 */
async function withDeadline<T>(
  work: Promise<T>,
  milliseconds: number,
): Promise<T | typeof deadlinePassed> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<typeof deadlinePassed>((resolve) => {
    timer = setTimeout(() => resolve(deadlinePassed), milliseconds);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
