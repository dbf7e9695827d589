/**
 * Resend's HTTP API (`POST /emails`), with plain `fetch`: one request per email, a deadline per
 * request, and every outcome returned as a value, never thrown. Edge Functions cannot open SMTP
 * ports, so an HTTP API it is (SPEC §11).
 *
 * Why not the `resend` npm SDK: the outbox needs exactly one POST, and the SDK would add its module
 * graph to every cold start of email-dispatch while hiding what we need to see: the status, the
 * error's `name`, `Retry-After` and the rate-limit headers. The SDK also returns errors as values
 * but without the HTTP status, and has no per-request deadline.
 *
 * Addresses and keys are never logged by this module, and the error texts it returns (kept by the
 * outbox as `last_error`) have every email address masked.
 */
import type { EmailConfig } from "./config.ts";
import { maskEmail } from "./log.ts";

/** One email as the outbox sends it. */
export interface OutgoingEmail {
  to: string;
  subject: string;
  html: string;
  text: string;
  /** Resend tags (ASCII letters, digits, `_`, `-`), e.g. the template's name. */
  tags?: { name: string; value: string }[];
}

/** What Resend's rate-limit headers said about the current window, when it sent them. */
export interface RateLimit {
  /** Requests left in the window (`ratelimit-remaining`). */
  remaining: number;
  /** Seconds until the window resets (`ratelimit-reset`). */
  resetSeconds: number;
}

/**
 * The outcome of one send:
 * - `sent`: Resend accepted it (or had already, under the same idempotency key);
 * - `retryable`: the network, a deadline, 408, 429, 5xx, or a concurrent request with the same
 *   key: the same email may succeed later;
 * - `rejected`: any other 4xx: this email will never be accepted as it is;
 * - `misconfigured`: Resend refused our API key or sender address: no email can be sent until
 *   the named variable is fixed, so the email itself is not to blame.
 *
 * `code` is short and safe for logs (`http_429`, `network`, `timeout`); `error` is the longer text
 * kept with the row, addresses masked.
 */
export type SendResult =
  | { kind: "sent"; id: string; rateLimit?: RateLimit }
  | {
    kind: "retryable";
    code: string;
    error: string;
    retryAfterSeconds?: number;
    rateLimit?: RateLimit;
  }
  | { kind: "rejected"; code: string; error: string }
  | {
    kind: "misconfigured";
    variable: "RESEND_API_KEY" | "EMAIL_FROM";
    code: string;
    error: string;
  };

export interface ResendClient {
  /**
   * Sends `email` from EMAIL_FROM with `Idempotency-Key: idempotencyKey`, so that a repeated
   * request (ours after a crash, or the runtime's own replay of a POST whose connection closed)
   * never sends the email twice within Resend's 24 hours.
   */
  send(email: OutgoingEmail, idempotencyKey: string): Promise<SendResult>;
}

export interface ResendClientOptions {
  /** The deadline of one request, answer body included; default 10 s. */
  timeoutMs?: number;
  /** Replaces the global fetch (tests). */
  fetch?: typeof fetch;
}

const defaultTimeoutMs = 10_000; // 10 s
const maxErrorChars = 500;
const maxIdChars = 200;
/** Resend error names that mean our key is wrong, missing or not allowed to send. */
const apiKeyErrors = new Set(["missing_api_key", "invalid_api_key", "restricted_api_key"]);
const emailPattern = /[^\s@<>"'(),;:]+@[^\s@<>"'(),;:]+/g;

/**
 * A Resend client for `config` (RESEND_API_URL, RESEND_API_KEY, EMAIL_FROM).
 *
 * @example
 * const resend = createResendClient(config.email.value);
 * const result = await resend.send({ to, subject, html, text }, row.id);
 * if (result.kind === "sent") console.log(result.id);
 */
export function createResendClient(
  config: Pick<EmailConfig, "resendApiKey" | "resendApiUrl" | "from">,
  options: ResendClientOptions = {},
): ResendClient {
  const endpoint = `${config.resendApiUrl}/emails`;
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const fetchImpl = options.fetch ?? fetch;
  const authorization = `Bearer ${config.resendApiKey}`;

  return {
    async send(email, idempotencyKey) {
      const body = JSON.stringify({
        from: config.from,
        to: [email.to],
        subject: email.subject,
        html: email.html,
        text: email.text,
        ...(email.tags?.length ? { tags: email.tags } : {}),
      });
      let status: number;
      let headers: Headers;
      let text: string;
      try {
        // One signal for the request and the answer's body: a stalled body is a timeout too.
        const signal = AbortSignal.timeout(timeoutMs);
        const res = await fetchImpl(endpoint, {
          method: "POST",
          headers: {
            authorization,
            "content-type": "application/json",
            "idempotency-key": idempotencyKey,
            "user-agent": "platform-auth-functions",
          },
          body,
          signal,
        });
        status = res.status;
        headers = res.headers;
        text = await res.text();
      } catch (error) {
        const name = (error as { name?: string })?.name;
        if (name === "TimeoutError" || name === "AbortError") {
          return {
            kind: "retryable",
            code: "timeout",
            error: `timeout: no answer within ${timeoutMs} ms`,
          };
        }
        return { kind: "retryable", code: "network", error: `network: ${describe(error)}` };
      }
      return readAnswer(status, headers, text);
    },
  };
}

/** Maps Resend's answer to a {@linkcode SendResult}. */
function readAnswer(status: number, headers: Headers, text: string): SendResult {
  const body = parseObject(text);
  const rateLimit = readRateLimit(headers);
  if (status >= 200 && status < 300) {
    const id = body?.id;
    if (typeof id === "string" && id.length > 0 && id.length <= maxIdChars) {
      return { kind: "sent", id, ...(rateLimit ? { rateLimit } : {}) };
    }
    // Accepted or not, we cannot tell: a retry under the same key answers the first id.
    return {
      kind: "retryable",
      code: `http_${status}`,
      error: `${status}: answer without an email id`,
      ...(rateLimit ? { rateLimit } : {}),
    };
  }
  const name = typeof body?.name === "string" ? body.name.slice(0, 64) : "unknown_error";
  const message = typeof body?.message === "string" ? body.message : "";
  const code = `http_${status}`;
  const error = clean(`${status} ${name}${message ? `: ${message}` : ""}`);
  if (
    status === 408 || status === 429 || status >= 500 ||
    (status === 409 && name === "concurrent_idempotent_requests")
  ) {
    const retryAfterSeconds = readRetryAfter(headers.get("retry-after"));
    return {
      kind: "retryable",
      code,
      error,
      ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      ...(rateLimit ? { rateLimit } : {}),
    };
  }
  if (status === 401 || apiKeyErrors.has(name)) {
    return { kind: "misconfigured", variable: "RESEND_API_KEY", code: `${code}_${name}`, error };
  }
  if (name === "invalid_from_address") {
    return { kind: "misconfigured", variable: "EMAIL_FROM", code: `${code}_${name}`, error };
  }
  if (name === "invalid_idempotent_request") {
    // Resend accepted an email under this key within 24 hours, with other content (the template
    // or a setting changed between attempts): sending again would be a duplicate.
    const note = "an earlier attempt under this key was accepted with other content";
    return { kind: "rejected", code, error: clean(`${error} (${note})`) };
  }
  return { kind: "rejected", code, error };
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** `Retry-After` in seconds (a delay; an HTTP date is read as none), at most a day. */
function readRetryAfter(value: string | null): number | undefined {
  if (value === null || !/^\s*\d{1,6}\s*$/.test(value)) return undefined;
  return Math.min(Number(value), 86_400);
}

function readRateLimit(headers: Headers): RateLimit | undefined {
  const remaining = headers.get("ratelimit-remaining");
  const reset = headers.get("ratelimit-reset");
  if (remaining === null || reset === null) return undefined;
  const r = Number(remaining), s = Number(reset);
  if (!Number.isInteger(r) || r < 0 || !Number.isFinite(s) || s < 0) return undefined;
  return { remaining: r, resetSeconds: Math.min(s, 60) };
}

/** An error's name and message, for `last_error`. */
function describe(error: unknown): string {
  if (error instanceof Error) return clean(`${error.name}: ${error.message}`);
  return clean(String(error));
}

/** Masks every email address, removes control characters and cuts the text. */
function clean(text: string): string {
  return text
    .replace(emailPattern, (address) => maskEmail(address))
    // deno-lint-ignore no-control-regex -- a stored error is one line of text
    .replace(/[\u0000-\u001f\u007f]+/g, " ")
    .slice(0, maxErrorChars);
}
