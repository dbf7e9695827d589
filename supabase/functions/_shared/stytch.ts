/**
 * Stytch email OTP, through the official `stytch` SDK: the only file that imports it.
 *
 * otp-send calls `sendEmailCode` (Stytch "log in or create user by email OTP"), otp-verify calls
 * `authenticateCode`. Both answer a small result instead of throwing, so handlers choose the HTTP
 * status: a wrong, expired or reused code is `invalid_code`; Stytch's 429 is `rate_limited`;
 * anything else (5xx, timeout, network error, unparseable or unexpected answer, refused
 * credentials) is `provider_error`, so a misconfiguration never looks like a wrong code.
 * Codes, emails and secrets are never logged.
 */
import { Client, envs, RequestError, StytchError } from "stytch";
import { z } from "zod";
import type { StytchConfig } from "./config.ts";
import type { Logger } from "./log.ts";

export type SendResult =
  | { ok: true; methodId: string }
  | { ok: false; reason: "rate_limited" | "provider_error" };

export type AuthenticateResult =
  | { ok: true; userId: string; email: string; emailVerified: boolean }
  | { ok: false; reason: "invalid_code" | "rate_limited" | "provider_error" };

export interface StytchOtp {
  /**
   * Sends a one-time code to `email`, creating the Stytch user if needed; `methodId` is Stytch's
   * email_id. A failure is logged through `log` (the request's logger).
   */
  sendEmailCode(email: string, log: Logger): Promise<SendResult>;
  /** Checks `code` against the live code of `methodId` (each code works once, until it expires). */
  authenticateCode(methodId: string, code: string, log: Logger): Promise<AuthenticateResult>;
}

/** The fields of a `stytch_call_failed` warning: what failed, never with whom or with which code. */
export interface StytchFailure {
  operation: "otps.email.login_or_create" | "otps.authenticate";
  reason: "rate_limited" | "provider_error";
  error_type?: string;
  status_code?: number;
  stytch_request_id?: string;
  detail?: "timeout" | "network" | "unparseable_answer" | "unexpected_answer";
}

export interface StytchOtpOptions {
  /** Deadline of each Stytch call, at most (and by default) STYTCH_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** Upper bound, and default, of every Stytch call. */
export const STYTCH_TIMEOUT_MS = 10_000; // 10 s

/** Stytch error types that mean "this code does not sign anyone in", not "Stytch failed". */
const INVALID_CODE_ERROR_TYPES = new Set([
  "otp_code_not_found", // 404: wrong code (or superseded by a newer send)
  "unable_to_auth_otp_code", // 401: code already used or expired
  "invalid_code", // 400: code format is invalid
  "invalid_method_id", // 400: method_id format is invalid
  "email_not_found", // 404: no such email_id
]);

const sendAnswer = z.object({ email_id: z.string().min(1) });
const authenticateAnswer = z.object({
  user_id: z.string().min(1),
  user: z.object({
    emails: z.array(z.object({ email_id: z.string(), email: z.string(), verified: z.boolean() })),
  }),
});

/**
 * The Stytch base URL: `apiUrl`'s origin when set (loopback in tests), else Stytch's live API for
 * `project-live-…` ids and its test API for the rest.
 *
 * @example stytchBaseUrl({ projectId: "project-live-1", secret: "s" }) // "https://api.stytch.com/"
 */
export function stytchBaseUrl(config: StytchConfig): string {
  if (config.apiUrl) return `${new URL(config.apiUrl).origin}/`;
  return config.projectId.startsWith("project-live-") ? envs.live : envs.test;
}

/**
 * Builds the SDK client once and returns the two OTP operations.
 *
 * @example
 * const otp = createStytchOtp({ projectId, secret });
 * const sent = await otp.sendEmailCode("ada@example.com", log);
 * if (sent.ok) await otp.authenticateCode(sent.methodId, "123456", log);
 */
export function createStytchOtp(config: StytchConfig, options: StytchOtpOptions = {}): StytchOtp {
  const timeoutMs = options.timeoutMs ?? STYTCH_TIMEOUT_MS;
  if (!(timeoutMs > 0 && timeoutMs <= STYTCH_TIMEOUT_MS)) {
    throw new RangeError(
      `Cannot create Stytch client: timeoutMs must be in (0, ${STYTCH_TIMEOUT_MS}]`,
    );
  }
  const client = new ClientWithDeadline(
    { project_id: config.projectId, secret: config.secret },
    stytchBaseUrl(config),
    timeoutMs,
  );

  function failure(
    operation: StytchFailure["operation"],
    error: unknown,
    startedAt: number,
    log: Logger,
  ) {
    const entry: StytchFailure = { operation, reason: "provider_error" };
    if (error instanceof StytchError) {
      // Only these fields: the error's message is the whole answer body.
      entry.error_type = error.error_type;
      entry.status_code = error.status_code;
      entry.stytch_request_id = error.request_id;
      if (error.status_code === 429 || error.error_type === "too_many_requests") {
        entry.reason = "rate_limited";
      }
    } else if (error instanceof RequestError) {
      // Never log the error itself: its `request` holds the email or the code.
      entry.detail = performance.now() - startedAt >= timeoutMs
        ? "timeout"
        : error.message.startsWith("Unable to parse JSON")
        ? "unparseable_answer"
        : "network";
    } else {
      entry.detail = "unexpected_answer";
    }
    log.warn("stytch_call_failed", { ...entry });
    return entry.reason;
  }

  return {
    async sendEmailCode(email, log) {
      const startedAt = performance.now();
      try {
        const answer = sendAnswer.parse(await client.otps.email.loginOrCreate({ email }));
        return { ok: true, methodId: answer.email_id };
      } catch (error) {
        return {
          ok: false,
          reason: failure("otps.email.login_or_create", error, startedAt, log),
        };
      }
    },

    async authenticateCode(methodId, code, log) {
      const startedAt = performance.now();
      try {
        const answer = authenticateAnswer.parse(
          await client.otps.authenticate({ method_id: methodId, code }),
        );
        const email = answer.user.emails.find((entry) => entry.email_id === methodId);
        if (!email) {
          throw new TypeError(
            "Cannot read Stytch answer: method_id is not among the user's emails",
          );
        }
        return {
          ok: true,
          userId: answer.user_id,
          email: email.email,
          emailVerified: email.verified,
        };
      } catch (error) {
        if (error instanceof StytchError && INVALID_CODE_ERROR_TYPES.has(error.error_type)) {
          return { ok: false, reason: "invalid_code" };
        }
        return { ok: false, reason: failure("otps.authenticate", error, startedAt, log) };
      }
    },
  };
}

/**
 * Two corrections to the SDK's client:
 * - It spreads its fetch config into every `fetch()` call (that is how its `dispatcher` option
 *   reaches undici) but never turns its `timeout` option into a signal, so under Deno's fetch that
 *   option does nothing. A `signal` getter gives each request its own deadline instead; an aborted
 *   request surfaces as the SDK's RequestError.
 * - Its `custom_base_url` refuses http:// (the emulators' loopback), and a custom `env` prints a
 *   warning at every construction. It reads the base URL from its fetch config at request time,
 *   so the URL is set there after construction.
 */
class ClientWithDeadline extends Client {
  constructor(
    config: ConstructorParameters<typeof Client>[0],
    baseUrl: string,
    timeoutMs: number,
  ) {
    super(config);
    this.fetchConfig.baseURL = baseUrl;
    Object.defineProperty(this.fetchConfig, "signal", {
      enumerable: true,
      get: () => AbortSignal.timeout(timeoutMs),
    });
  }
}
