/**
 * A local, wire-compatible emulator of the two Stytch endpoints our email OTP flow uses:
 * `POST /v1/otps/email/login_or_create` and `POST /v1/otps/authenticate`, behind HTTP basic auth
 * (project id : secret), answering Stytch's JSON shapes and error objects. The real `stytch` SDK
 * talks to it when `STYTCH_API_URL` points here.
 *
 * Local tooling for tests and the dev server only: it lives outside `supabase/functions/` and is
 * never deployed. It never logs codes; the caller sees them through `onCode`, `codeFor` and
 * `lastCodeFor`.
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** A provider failure the emulator can play instead of a real answer. */
export type StytchFailure =
  | "server_error" // 500 internal_server_error, Stytch's error JSON
  | "rate_limited" // 429 too_many_requests, Stytch's error JSON
  | "garbage" // 200 with a body that is not JSON
  | "unexpected_json" // 200 with JSON that lacks the expected fields
  | "hang"; // never answers (until the emulator is closed)

export interface StytchEmulatorOptions {
  /** Port on 127.0.0.1; 0 (the default) picks any free port. */
  port?: number;
  projectId?: string;
  secret?: string;
  /** Clock used for code expiry; inject one to test expiry without sleeping. */
  now?: () => Date;
  /** Called with every code issued, so the dev server can print it. */
  onCode?: (email: string, code: string) => void;
  /** Answer the next `times` requests (default: all of them) with this failure. */
  failWith?: { kind: StytchFailure; times?: number };
}

export interface StytchEmulator {
  /** Base URL, e.g. `http://127.0.0.1:PORT`; use it as `STYTCH_API_URL`. */
  url: string;
  projectId: string;
  secret: string;
  /** The latest code issued for a method id (email id), even if since used or expired. */
  codeFor(methodId: string): string | undefined;
  /** The latest code issued for an email address, even if since used or expired. */
  lastCodeFor(email: string): string | undefined;
  /** Requests received per endpoint, failed ones included. */
  calls: { loginOrCreate: number; authenticate: number };
  close(): Promise<void>;
}

const DEFAULT_EXPIRATION_MINUTES = 2; // Stytch's default
const MAX_EXPIRATION_MINUTES = 10; // Stytch accepts 1 to 10
const CODE_RANGE = 1_000_000; // six digits
const UNBIASED_LIMIT = Math.floor(2 ** 32 / CODE_RANGE) * CODE_RANGE;

interface StytchUser {
  userId: string;
  emailId: string;
  email: string;
  createdAt: string;
  verified: boolean;
  code?: IssuedCode; // one live code per method: a new send replaces it
}

interface IssuedCode {
  code: string;
  expiresAtMs: number;
  used: boolean;
}

/** Starts the emulator on 127.0.0.1 and resolves once it listens. */
export async function startStytchEmulator(
  options: StytchEmulatorOptions = {},
): Promise<StytchEmulator> {
  const projectId = options.projectId ?? `project-test-${crypto.randomUUID()}`;
  const secret = options.secret ?? `secret-test-${crypto.randomUUID()}`;
  const env = projectId.startsWith("project-live-") ? "live" : "test";
  const now = options.now ?? (() => new Date());
  const usersByEmail = new Map<string, StytchUser>();
  const usersByEmailId = new Map<string, StytchUser>(); // email id = method id
  const calls = { loginOrCreate: 0, authenticate: 0 };
  const hanging = new Set<() => void>();
  let failure = options.failWith &&
    { kind: options.failWith.kind, remaining: options.failWith.times ?? Infinity };

  const requestId = () => `request-id-${env}-${crypto.randomUUID()}`;
  const answer = (status: number, body: Record<string, unknown>) =>
    Response.json({ status_code: status, request_id: requestId(), ...body }, { status });
  const error = (status: number, type: string, message: string) =>
    answer(status, {
      error_type: type,
      error_message: message,
      error_url: `https://stytch.com/docs/api/errors/${status}#${type}`,
    });

  async function playFailure(kind: StytchFailure): Promise<Response> {
    switch (kind) {
      case "server_error":
        return error(500, "internal_server_error", "Oops, something seems to have gone wrong.");
      case "rate_limited":
        return error(429, "too_many_requests", "Too many requests have been made.");
      case "garbage":
        return new Response('{"status_code": 200, "request_id": ', {
          headers: { "content-type": "application/json" },
        });
      case "unexpected_json":
        return answer(200, {});
      case "hang":
        await new Promise<void>((release) => hanging.add(release));
        return error(503, "internal_server_error", "The emulator was closed.");
    }
  }

  function loginOrCreate(body: Record<string, unknown>): Response {
    const email = typeof body.email === "string" ? body.email.trim().toLowerCase() : "";
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
      return error(400, "invalid_email", "Email format is invalid.");
    }
    const minutes = body.expiration_minutes ?? DEFAULT_EXPIRATION_MINUTES;
    if (
      typeof minutes !== "number" || !Number.isInteger(minutes) || minutes < 1 ||
      minutes > MAX_EXPIRATION_MINUTES
    ) {
      return error(400, "bad_request", "The submitted request is invalid.");
    }
    let user = usersByEmail.get(email);
    const userCreated = user === undefined;
    if (!user) {
      user = {
        userId: `user-${env}-${crypto.randomUUID()}`,
        emailId: `email-${env}-${crypto.randomUUID()}`,
        email,
        createdAt: now().toISOString(),
        verified: false,
      };
      usersByEmail.set(email, user);
      usersByEmailId.set(user.emailId, user);
    }
    const code = randomCode();
    user.code = { code, expiresAtMs: now().getTime() + minutes * 60_000, used: false };
    options.onCode?.(email, code);
    return answer(200, {
      user_id: user.userId,
      email_id: user.emailId,
      user_created: userCreated,
    });
  }

  function authenticate(body: Record<string, unknown>): Response {
    if (typeof body.method_id !== "string" || typeof body.code !== "string") {
      return error(400, "bad_request", "The submitted request is invalid.");
    }
    const user = usersByEmailId.get(body.method_id);
    const issued = user?.code;
    if (!user || !issued || !sameSecret(issued.code, body.code)) {
      return error(
        404,
        "otp_code_not_found",
        "The passcode was incorrect and could not be authenticated.",
      );
    }
    if (issued.used || now().getTime() >= issued.expiresAtMs) {
      return error(
        401,
        "unable_to_auth_otp_code",
        "The passcode could not be authenticated because it was either already used or expired.",
      );
    }
    issued.used = true;
    user.verified = true;
    return answer(200, {
      user_id: user.userId,
      method_id: user.emailId,
      session_token: "", // no session_duration_minutes, so Stytch starts no session
      session_jwt: "",
      session: null,
      reset_sessions: false,
      user: {
        user_id: user.userId,
        emails: [{ email_id: user.emailId, email: user.email, verified: user.verified }],
        status: "active",
        phone_numbers: [],
        webauthn_registrations: [],
        providers: [],
        totps: [],
        crypto_wallets: [],
        biometric_registrations: [],
        is_locked: false,
        roles: ["stytch_user"],
        name: { first_name: "", middle_name: "", last_name: "" },
        created_at: user.createdAt,
        trusted_metadata: {},
        untrusted_metadata: {},
      },
    });
  }

  const routes: Record<string, {
    counter: keyof typeof calls;
    run: (body: Record<string, unknown>) => Response;
  }> = {
    "POST /v1/otps/email/login_or_create": { counter: "loginOrCreate", run: loginOrCreate },
    "POST /v1/otps/authenticate": { counter: "authenticate", run: authenticate },
  };

  async function handle(request: Request): Promise<Response> {
    const endpoint = routes[`${request.method} ${new URL(request.url).pathname}`];
    if (endpoint) calls[endpoint.counter]++;
    if (failure && failure.remaining > 0) {
      failure.remaining--;
      return await playFailure(failure.kind);
    }
    if (!hasProjectCredentials(request.headers.get("authorization"), projectId, secret)) {
      return error(401, "unauthorized_credentials", "Unauthorized credentials.");
    }
    if (!endpoint) return error(404, "route_not_found", "The requested route does not exist.");
    const body = await request.json().catch(() => null);
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return error(400, "bad_request", "The submitted request is invalid.");
    }
    return endpoint.run(body);
  }

  const listening = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => listening.resolve() },
    handle,
  );
  await listening.promise;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    projectId,
    secret,
    calls,
    codeFor: (methodId) => usersByEmailId.get(methodId)?.code?.code,
    lastCodeFor: (email) => usersByEmail.get(email.trim().toLowerCase())?.code?.code,
    close() {
      failure = undefined;
      for (const release of hanging) release();
      hanging.clear();
      closing ??= server.shutdown();
      return closing;
    },
  };
}

/** A uniformly random six-digit code (rejection sampling avoids modulo bias). */
function randomCode(): string {
  const value = new Uint32Array(1);
  do crypto.getRandomValues(value); while (value[0] >= UNBIASED_LIMIT);
  return String(value[0] % CODE_RANGE).padStart(6, "0");
}

/** Checks `Authorization: Basic base64(project_id:secret)` as Stytch does. */
function hasProjectCredentials(header: string | null, projectId: string, secret: string): boolean {
  if (!header?.startsWith("Basic ")) return false;
  let presented: string;
  try {
    presented = atob(header.slice("Basic ".length).trim());
  } catch {
    return false;
  }
  return sameSecret(presented, `${projectId}:${secret}`);
}

/** Constant-time comparison, so even the emulator does not leak secrets or codes through timing. */
function sameSecret(a: string, b: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(a), digest(b));
}
