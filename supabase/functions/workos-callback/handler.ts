/**
 * workos-callback — `GET ?code=…&state=…`, where WorkOS AuthKit sends the browser back after
 * sign-in (WORKOS_REDIRECT_URI; mode `none`: a browser redirect carries no JWT). Trust comes
 * from the sealed state (ours, unaltered, unexpired, unused) and from WorkOS accepting the code with
 * the PKCE verifier the state holds.
 *
 * - A missing, forged, expired or already-used state is 400 INVALID_STATE (JSON): there is no
 *   trustworthy place to send the browser. So is a state started in redirect mode that comes
 *   without the browser-binding cookie workos-login set with it (SPEC §13.12, login CSRF: someone
 *   else's sign-in brought to this browser). The check comes before the nonce is consumed, so
 *   such an attempt does not spend the state; once the cookie has matched, every answer clears
 *   it.
 * - With a good state: consume its nonce (one SQL call, before WorkOS is called, so a replay is
 *   INVALID_STATE and never reaches WorkOS), exchange the code (9 s bound), upsert the person and
 *   open a session (one SQL call), then 302 to
 *   `<return_to>#access_token=…&token_type=bearer&expires_in=…&expires_at=…&refresh_token=…
 *   &person_id=…`. Tokens go in the fragment, which browsers never send to a server.
 * - Any failure after a good state is 302 `<return_to>#error=<CODE>&error_description=<text>` with
 *   no person or session written (the nonce stays spent): ACCESS_DENIED (cancelled at WorkOS), PROVIDER_ERROR (WorkOS `error=` or
 *   unavailable), INVALID_CODE (WorkOS refused the code), EMAIL_NOT_VERIFIED, SIGNUP_DISABLED,
 *   IDENTITY_CONFLICT, INTERNAL.
 *
 * The shared request log line records only the path: the query (code, state) and the Location
 * (tokens) never reach a log.
 */
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError } from "../_shared/http.ts";
import { cutText } from "../_shared/json_sanitize.ts";
import { errorFields } from "../_shared/log.ts";
import type { IdentityError } from "../_shared/person.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { signIn } from "../_shared/session_store.ts";
import { bindingCookie, bindingSetCookie, browserBindingMatches } from "../_shared/state.ts";
import { tokenResponse } from "../_shared/token_response.ts";
import { consumeWorkosState } from "../_shared/workos_state.ts";

/** The codes a failed sign-in sends back in the fragment. */
export type CallbackErrorCode =
  | IdentityError
  | "ACCESS_DENIED"
  | "PROVIDER_ERROR"
  | "INVALID_CODE"
  | "DATABASE_UNAVAILABLE"
  | "INTERNAL";

const errorDescriptions: Record<CallbackErrorCode, string> = {
  ACCESS_DENIED: "Sign-in was cancelled",
  PROVIDER_ERROR: "WorkOS could not complete the sign-in; try again",
  INVALID_CODE: "WorkOS refused the sign-in code; sign in again",
  EMAIL_NOT_VERIFIED:
    "This email address belongs to an existing account and WorkOS has not verified it",
  SIGNUP_DISABLED: "Sign-up is by invitation only and this email address has no invitation",
  IDENTITY_CONFLICT: "This email address is already linked to another WorkOS account",
  DATABASE_UNAVAILABLE: "The sign-in could not be completed right now; sign in again shortly",
  INTERNAL: "Unexpected error",
};

// Redirects carry tokens (success) or a spent state's outcome: never cached, never a Referer.
const redirectHeaders = { "cache-control": "no-store", "referrer-policy": "no-referrer" };
const maxDisplayNameLength = 200; // the person's display_name check constraint

export function createHandler(deps: Deps): Handler {
  return defineHandler(deps, {
    name: "workos-callback",
    methods: ["GET"],
    auth: "none",
    requires: ["core", "workos"],
  }, async (req, { core, workos, log, requestId, now }) => {
    const params = new URL(req.url).searchParams;

    const state = await workos.states.open(params.get("state") ?? "", now);
    if (!state) {
      log.warn("workos_state_rejected", { reason: "invalid_or_expired" });
      throw invalidState("State is missing, malformed, forged or expired");
    }

    // A state started in redirect mode is only good in the browser that holds its cookie.
    let answerHeaders: Record<string, string> = {};
    if (state.browserBinding !== null) {
      const cookie = bindingCookie(workos.config.redirectUri);
      const cookieHeader = req.headers.get("cookie");
      if (!cookie || !await browserBindingMatches(state.browserBinding, cookie, cookieHeader)) {
        log.warn("workos_state_rejected", { reason: "browser_binding_mismatch" });
        throw invalidState("State was not started in this browser");
      }
      // The cookie has done its work: whatever the answer, it goes.
      answerHeaders = { "set-cookie": bindingSetCookie(cookie, null) };
    }

    // The state is ours: from here on the browser goes back to return_to, with tokens or an error.
    const fail = (code: CallbackErrorCode, fields: Record<string, unknown> = {}) => {
      log.warn("workos_sign_in_failed", { reason: code, ...fields });
      const description = code === "INTERNAL"
        ? `${errorDescriptions.INTERNAL} (request id ${requestId})`
        : errorDescriptions[code];
      return redirect(
        state.returnTo,
        { error: code, error_description: description },
        answerHeaders,
      );
    };

    try {
      if (!await consumeWorkosState(core.sql, state, now)) {
        log.warn("workos_state_rejected", { reason: "already_used" });
        throw invalidState("State has already been used", answerHeaders);
      }

      const providerError = params.get("error");
      if (providerError !== null) {
        // WorkOS's own description is not passed on: anyone can put text in this URL.
        return fail(providerError === "access_denied" ? "ACCESS_DENIED" : "PROVIDER_ERROR", {
          workos_error: /^[a-z_]{1,64}$/.test(providerError) ? providerError : "other",
        });
      }
      const code = params.get("code");
      if (!code) return fail("PROVIDER_ERROR", { detail: "no_code" });

      const exchange = await workos.auth.exchangeCode(code, state.codeVerifier);
      if (!exchange.ok) {
        return fail(exchange.reason === "invalid_grant" ? "INVALID_CODE" : "PROVIDER_ERROR", {
          workos_reason: exchange.reason,
        });
      }

      const { user, sessionId } = exchange;
      // Each name is clean already (workos.ts); joined, they are cut again, at a character.
      const fullName = [user.firstName, user.lastName].filter(Boolean).join(" ");
      const displayName = cutText(fullName, maxDisplayNameLength) || null;
      const result = await signIn(core.sql, {
        provider: "workos",
        providerUserId: user.id,
        email: user.email,
        emailVerified: user.emailVerified,
        displayName,
      }, { workosSessionId: sessionId, signupMode: core.config.signupMode, now });
      if (!result.ok) return fail(result.error, { workos_user_id: user.id });

      const response = await tokenResponse(core.tokens, result, now);
      log.info("workos_sign_in", {
        person_id: result.person.id,
        session_id: result.session_id,
        is_new_user: result.is_new_user,
      });
      return redirect(state.returnTo, {
        access_token: response.access_token,
        token_type: response.token_type,
        expires_in: String(response.expires_in),
        expires_at: String(response.expires_at),
        refresh_token: response.refresh_token ?? "",
        person_id: result.person.id,
      }, answerHeaders);
    } catch (error) {
      // The database did not answer in time: nothing was written, and the browser is told so.
      if (error instanceof HttpError && error.code === "DATABASE_UNAVAILABLE") {
        return fail("DATABASE_UNAVAILABLE");
      }
      if (error instanceof HttpError) throw error;
      // A redirect flow must not strand the browser on a JSON 500; sign_in is one statement,
      // so a failure there has written nothing.
      log.error("unhandled_error", errorFields(error));
      return fail("INTERNAL");
    }
  });
}

function invalidState(message: string, headers: Record<string, string> = {}): HttpError {
  return new HttpError(400, "INVALID_STATE", message, { "cache-control": "no-store", ...headers });
}

/** 302 to `returnTo` with `fields` in the fragment (return_to never has one: redirects.ts). */
function redirect(
  returnTo: string,
  fields: Record<string, string>,
  headers: Record<string, string>,
): Response {
  const location = `${returnTo}#${new URLSearchParams(fields)}`;
  return new Response(null, { status: 302, headers: { location, ...redirectHeaders, ...headers } });
}
