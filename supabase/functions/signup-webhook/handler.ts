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
 * - anything else signed → `{ ignored: true }`; a signed body of no known shape → 400.
 *
 * Deliveries are at-least-once and unordered; provisioning reads the auth.users row itself and only
 * ever moves forward, so any number of deliveries in any order end in the same rows.
 */
import { z } from "zod";
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
import type { Logger } from "../_shared/log.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { hasOpenInvitation, provisionAuthUser } from "../_shared/provisioning.ts";
import { secretsEqual } from "../_shared/signatures.ts";
import type { Sql } from "../_shared/db.ts";
import { validate } from "../_shared/validate.ts";

const hookEnvelope = z.object({ metadata: z.object({ name: z.string().min(1) }) });
const tableEnvelope = z.object({ type: z.string().min(1), schema: z.string(), table: z.string() });
const hookUser = z.object({ id: z.uuid(), email: z.string().max(320).nullish() });
const authUserRecord = z.object({ id: z.uuid(), email_confirmed_at: z.string().nullish() });

/** The events this function acts on, told apart by `kind` (see eventKind). */
const signupEvent = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("before-user-created"), user: hookUser }),
  z.object({ kind: z.literal("after-user-created"), user: hookUser }),
  z.object({ kind: z.literal("INSERT auth.users"), record: authUserRecord }),
  z.object({
    kind: z.literal("UPDATE auth.users"),
    record: authUserRecord,
    old_record: authUserRecord,
  }),
]);
const knownKinds = new Set<string>(signupEvent.options.map((option) => option.shape.kind.value));

const inviteOnlyMessage = "Signups are by invitation only";

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

    const payload = parseJson(body);
    const kind = eventKind(payload);
    if (!knownKinds.has(kind)) return ignored(log, kind);
    const event = validate(signupEvent, { ...payload as object, kind });
    switch (event.kind) {
      case "before-user-created": {
        if (core.config.signupMode === "invite") {
          if (!await hasOpenInvitation(core.sql, event.user.email ?? null, now)) {
            log.info("signup_refused_without_invitation", { user_id: event.user.id });
            return json({ error: { http_code: 403, message: inviteOnlyMessage } });
          }
        }
        return json({});
      }
      case "after-user-created":
        return await provision(core.sql, event.user.id, now, log, event.kind);
      case "INSERT auth.users":
        return await provision(core.sql, event.record.id, now, log, event.kind);
      case "UPDATE auth.users":
        if (!event.old_record.email_confirmed_at && event.record.email_confirmed_at) {
          return await provision(core.sql, event.record.id, now, log, event.kind);
        }
        return ignored(log, event.kind);
    }
  });
}

/**
 * What a delivery is: a hook's `metadata.name` (`after-user-created`), or a database webhook's
 * type and table (`INSERT auth.users`). 400 for a body that is neither.
 */
function eventKind(payload: unknown): string {
  const shape = payload !== null && typeof payload === "object" && !Array.isArray(payload)
    ? payload
    : {};
  if ("metadata" in shape) return validate(hookEnvelope, payload).metadata.name;
  if ("type" in shape && "table" in shape) {
    const event = validate(tableEnvelope, payload);
    return `${event.type} ${event.schema}.${event.table}`;
  }
  throw new HttpError(
    400,
    "VALIDATION_FAILED",
    "Body must be a Supabase Auth hook or a database webhook payload",
  );
}

/** Provisions the auth user in one SQL call and answers `{ person_id, workspace_id }`. */
async function provision(
  sql: Sql,
  userId: string,
  now: Date,
  log: Logger,
  source: string,
): Promise<Response> {
  const provisioned = await provisionAuthUser(sql, userId, now);
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
