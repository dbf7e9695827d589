/**
 * signup-webhook — called by Supabase Auth hooks and by the database webhook on `auth.users`
 * (mode `none`: neither sends a JWT). Authenticated over the raw bytes, before anything is
 * parsed, by a Standard Webhooks signature under any secret of SIGNUP_HOOK_SECRET (what Supabase
 * Auth HTTP hooks send), or by `Authorization: Bearer SIGNUP_WEBHOOK_TOKEN` (what the database
 * webhook sends); anything else is 401 INVALID_SIGNATURE. Neither variable set: 503.
 *
 * - `before-user-created` hook → `{}` to allow; with SIGNUP_MODE=invite an email without an open
 *   invitation gets `{ error: { http_code: 403, message } }`, through a 200 as Supabase Auth needs.
 * - `after-user-created` hook, or database webhook INSERT on auth.users → provisioning
 *   (one SQL call) → `{ person_id, workspace_id }`.
 * - database webhook UPDATE on auth.users where email_confirmed_at became set → the same
 *   provisioning, which makes the welcome email ready (and completes everything when the UPDATE
 *   arrives before the INSERT).
 * - anything else signed → `{ ignored: true }`; only a body that is not JSON at all is 400.
 *
 * Deliveries are at-least-once and unordered; provisioning reads the auth.users row itself and only
 * ever moves forward, so any number of deliveries in any order end in the same rows.
 *
 * No content of a signed JSON delivery is answered with an error (SPEC §13.5): the body is cleaned
 * first (json_sanitize.ts: lone surrogates and U+0000 become U+FFFD, strings are cut at 4096
 * characters, numbers JSON cannot hold are dropped, nesting is cut at 64 levels) and read
 * leniently, a field of an unexpected type reading as absent. An event whose user id is not a
 * UUID cannot be provisioned and is answered `{ ignored: true }` with a warning; a
 * before-user-created hook whose email cannot be read is refused in invite mode, like any email
 * without an invitation.
 */
import type { Deps } from "../_shared/deps.ts";
import {
  bearerToken,
  type Handler,
  HttpError,
  json,
  maxJsonBodyBytes,
  parseJson,
  readBody,
} from "../_shared/http.ts";
import { hasFixes, sanitizeJson } from "../_shared/json_sanitize.ts";
import { isUuid } from "../_shared/jwt.ts";
import type { Logger } from "../_shared/log.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { hasOpenInvitation, provisionAuthUser } from "../_shared/provisioning.ts";
import type { CoreServices } from "../_shared/services.ts";
import { secretsEqual } from "../_shared/signatures.ts";

/** The events this function acts on, read from a delivery by readEvent. */
type SignupEvent =
  | { kind: "before-user-created"; userId: string | null; email: string | null }
  | { kind: "after-user-created" | "INSERT auth.users"; userId: string | null }
  | { kind: "UPDATE auth.users"; userId: string | null; emailConfirmed: boolean }
  | { kind: "other"; source: string };

const inviteOnlyMessage = "Signups are by invitation only";
/** Longest email read from a hook (auth.users has no limit; SMTP paths stop at 256). */
const maxEmailLength = 320;
/** What an event name or table part must look like to be written to a log. */
const loggableName = /^[\w.:-]{1,64}$/;

export function createHandler(deps: Deps): Handler {
  return defineHandler(deps, {
    name: "signup-webhook",
    methods: ["POST"],
    auth: "none",
    requires: ["signup", "core"],
  }, async (req, { signup, core, log, now }) => {
    const body = await readBody(req, maxJsonBodyBytes);
    // Authenticate the exact bytes that were signed before parsing anything: a parser never sees
    // input from someone who holds neither the hook secret nor the token.
    const presentedToken = bearerToken(req);
    const authentic =
      (signup.verifier !== null && await signup.verifier.verify(body, req.headers, now)) ||
      // The token is a shared secret: compared in constant time (and length), never with ===.
      (signup.bearerToken !== undefined && presentedToken !== null &&
        await secretsEqual(presentedToken, signup.bearerToken));
    if (!authentic) {
      throw new HttpError(
        401,
        "INVALID_SIGNATURE",
        "Webhook signature or token is missing or invalid",
      );
    }

    const { value: payload, fixes } = sanitizeJson(parseJson(body));
    if (hasFixes(fixes)) log.warn("signup_delivery_sanitized", { ...fixes });
    const event = readEvent(payload);
    switch (event.kind) {
      case "before-user-created": {
        if (core.config.signupMode === "invite") {
          if (!await hasOpenInvitation(core.sql, event.email, now)) {
            log.info("signup_refused_without_invitation", { user_id: event.userId });
            return json({ error: { http_code: 403, message: inviteOnlyMessage } });
          }
        }
        return json({});
      }
      case "after-user-created":
      case "INSERT auth.users":
        return await provision(core, event.userId, now, log, event.kind);
      case "UPDATE auth.users":
        if (!event.emailConfirmed) return ignored(log, event.kind);
        return await provision(core, event.userId, now, log, event.kind);
      case "other":
        return ignored(log, event.source);
    }
  });
}

/**
 * What a delivery is, read leniently: a hook by its `metadata.name` (`after-user-created`), a
 * database webhook by its type and table (`INSERT auth.users`); anything else is `other`.
 */
function readEvent(payload: unknown): SignupEvent {
  const body = asRecord(payload) ?? {};
  if ("metadata" in body) {
    const name = asRecord(body.metadata)?.name;
    const user = asRecord(body.user);
    const userId = asUuid(user?.id);
    if (name === "before-user-created") {
      const email = user?.email;
      return {
        kind: name,
        userId,
        email: typeof email === "string" && email.length <= maxEmailLength ? email : null,
      };
    }
    if (name === "after-user-created") return { kind: name, userId };
    return { kind: "other", source: loggable(name) };
  }
  if ("type" in body && "table" in body) {
    const parts = [body.type, body.schema, body.table].map(loggable);
    const source = `${parts[0]} ${parts[1]}.${parts[2]}`;
    const record = asRecord(body.record);
    const userId = asUuid(record?.id);
    if (source === "INSERT auth.users") return { kind: source, userId };
    if (source === "UPDATE auth.users") {
      // Provisioning reads the row itself, so this only decides whether to call it.
      const emailConfirmed = !isSet(asRecord(body.old_record)?.email_confirmed_at) &&
        isSet(record?.email_confirmed_at);
      return { kind: source, userId, emailConfirmed };
    }
    return { kind: "other", source };
  }
  return { kind: "other", source: "unknown_shape" };
}

function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : null;
}

function asUuid(value: unknown): string | null {
  return isUuid(value) ? value : null;
}

function isSet(value: unknown): boolean {
  return value !== undefined && value !== null && value !== "" && value !== false;
}

/** A name fit for a log line, or `other`. */
function loggable(value: unknown): string {
  return typeof value === "string" && loggableName.test(value) ? value : "other";
}

/** Provisions the auth user in one SQL call and answers `{ person_id, workspace_id }`. */
async function provision(
  core: CoreServices,
  userId: string | null,
  now: Date,
  log: Logger,
  source: string,
): Promise<Response> {
  if (userId === null) {
    // Nothing to provision without the user's id; a retry would bring the same body.
    log.warn("signup_event_ignored", { source, reason: "unreadable_user_id" });
    return json({ ignored: true });
  }
  const { emailConfirmation } = core.config;
  const provisioned = await provisionAuthUser(core.sql, { userId, emailConfirmation }, now);
  if ("ignored" in provisioned) {
    log.info("signup_event_ignored", { source, user_id: userId, reason: provisioned.ignored });
    return json({ ignored: true });
  }
  if (provisioned.email_conflict) {
    // Never merged into the person who holds the address: this person keeps no email.
    log.warn("signup_email_taken", { person_id: provisioned.person_id });
  }
  log.info("user_provisioned", {
    source,
    person_id: provisioned.person_id,
    workspace_id: provisioned.workspace_id,
  });
  return json({ person_id: provisioned.person_id, workspace_id: provisioned.workspace_id });
}

function ignored(log: Logger, source: string): Response {
  log.info("signup_event_ignored", { source });
  return json({ ignored: true });
}
