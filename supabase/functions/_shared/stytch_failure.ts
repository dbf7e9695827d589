/**
 * How a Stytch failure reads to the client, the same for otp-send and otp-verify: Stytch's own
 * rate limit is 429 with a Retry-After, anything else (5xx, timeout, refused credentials) is 502.
 */
import { HttpError } from "./http.ts";

/** What a client is told to wait when Stytch rate-limits us (it does not say how long). */
const providerRetryAfterSeconds = 60;

/** The answer for a Stytch call that failed for `reason`. */
export function stytchFailure(reason: "rate_limited" | "provider_error"): HttpError {
  return reason === "rate_limited"
    ? new HttpError(429, "RATE_LIMITED", "The sign-in provider is busy; try again later", {
      "retry-after": String(providerRetryAfterSeconds),
    })
    : new HttpError(502, "PROVIDER_ERROR", "The sign-in provider failed; try again later");
}
