/**
 * signup-webhook — called by Supabase Auth hooks and by the database webhook on `auth.users`
 * (verify_jwt = false: neither sends a JWT). Authenticated over the raw bytes, before anything is
 * parsed, by a Standard Webhooks signature under any secret of SIGNUP_HOOK_SECRET (what Supabase
 * Auth HTTP hooks send), or by `Authorization: Bearer SIGNUP_WEBHOOK_TOKEN` (what the database
 * webhook sends); anything else is 401 INVALID_SIGNATURE. Neither variable set: 503.
 *
 * - `before-user-created` hook → `{}` to allow; with SIGNUP_MODE=invite an email without an open
 *   invitation gets `{ error: { http_code: 403, message } }`, through a 200 as Supabase Auth needs.
 * - `after-user-created` hook, or database webhook INSERT on auth.users → provisioning
 *   (identity.provision_auth_user) → `{ person_id, workspace_id }`.
 * - database webhook UPDATE on auth.users where email_confirmed_at became set → the same
 *   provisioning, which makes the welcome email ready (and completes everything when the UPDATE
 *   arrives before the INSERT).
 * - anything else signed → `{ ignored: true }`; a signed body of no known shape → 400.
 *
 * Deliveries are at-least-once and unordered; provisioning reads the auth.users row itself and only
 * ever moves forward, so any number of deliveries in any order end in the same rows.
 */
import { z } from "zod";
import { callFunction, type Sql } from "../_shared/db.ts";
import { type Deps, platformServices } from "../_shared/deps.ts";
import {
  bearerToken,
  defineHandler,
  type Handler,
  HttpError,
  json,
  type Logger,
  maxJsonBodyBytes,
  parseJson,
  readBody,
  validate,
} from "../_shared/http.ts";
import { createStandardWebhookVerifier, secretsEqual } from "../_shared/signatures.ts";

const hookEnvelope = z.object({ metadata: z.object({ name: z.string().min(1) }) });
const hookUser = z.object({
  user: z.object({ id: z.uuid(), email: z.string().max(320).nullish() }),
});
const tableEvent = z.object({ type: z.string().min(1), schema: z.string(), table: z.string() });
const authUserRecord = z.object({ id: z.uuid(), email_confirmed_at: z.string().nullish() });

const inviteOnlyMessage = "Signups are by invitation only";

/** What identity.provision_auth_user answers. */
type ProvisionResult =
  | { person_id: string; workspace_id: string | null; email_conflict: boolean }
  | { ignored: string };

export function createHandler(deps: Deps): Handler {
  const feature = deps.config.signupWebhook;
  const platform = platformServices(deps);
  const verifier = feature.ok && feature.value.hookSecrets.length > 0
    ? createStandardWebhookVerifier(feature.value.hookSecrets)
    : null;
  const notConfigured = !feature.ok
    ? feature.message
    : feature.value.hookSecrets.length > 0 && !verifier
    ? "SIGNUP_HOOK_SECRET is malformed: each secret must be v1,whsec_<base64>"
    : null;
  const expectedToken = feature.ok ? feature.value.bearerToken : undefined;

  return defineHandler({ name: "signup-webhook", methods: ["POST"] }, async (req, { log }) => {
    if (notConfigured) {
      throw new HttpError(
        503,
        "SIGNUP_WEBHOOK_NOT_CONFIGURED",
        `Signup webhook is not configured: ${notConfigured}`,
      );
    }
    const now = deps.now();
    const body = await readBody(req, maxJsonBodyBytes);
    // Authenticate the exact bytes that were signed before parsing anything: a parser never sees
    // input from someone who holds neither the hook secret nor the token.
    const presentedToken = bearerToken(req);
    const authentic = (verifier !== null && await verifier.verify(body, req.headers, now)) ||
      // The token is a shared secret: compared in constant time (and length), never with ===.
      (expectedToken !== undefined && presentedToken !== null &&
        await secretsEqual(presentedToken, expectedToken));
    if (!authentic) {
      throw new HttpError(
        401,
        "INVALID_SIGNATURE",
        "Webhook signature or token is missing or invalid",
      );
    }

    const payload = parseJson(body);
    const shape = payload !== null && typeof payload === "object" ? payload : {};
    if ("metadata" in shape) {
      const { metadata } = validate(hookEnvelope, payload);
      switch (metadata.name) {
        case "before-user-created": {
          const { user } = validate(hookUser, payload);
          const { core, sql } = platform();
          if (core.signupMode === "invite") {
            const invited = await callFunction<boolean>(
              sql,
              "identity.has_open_invitation",
              user.email ?? null,
              now,
            );
            if (!invited) {
              log.info("signup refused: no open invitation", { user_id: user.id });
              return json({ error: { http_code: 403, message: inviteOnlyMessage } });
            }
          }
          return json({});
        }
        case "after-user-created": {
          const { user } = validate(hookUser, payload);
          return await provision(platform().sql, user.id, now, log, metadata.name);
        }
        default:
          return ignored(log, metadata.name);
      }
    }
    if ("type" in shape && "table" in shape) {
      const event = validate(tableEvent, payload);
      const source = `database ${event.type} ${event.schema}.${event.table}`;
      if (event.schema !== "auth" || event.table !== "users") return ignored(log, source);
      if (event.type === "INSERT") {
        const record = validate(z.object({ record: authUserRecord }), payload).record;
        return await provision(platform().sql, record.id, now, log, source);
      }
      if (event.type === "UPDATE") {
        const { record, old_record } = validate(
          z.object({ record: authUserRecord, old_record: authUserRecord }),
          payload,
        );
        if (!old_record.email_confirmed_at && record.email_confirmed_at) {
          return await provision(platform().sql, record.id, now, log, source);
        }
      }
      return ignored(log, source);
    }
    throw new HttpError(
      400,
      "VALIDATION_FAILED",
      "Body must be a Supabase Auth hook or a database webhook payload",
    );
  });
}

/** Provisions the auth user in one SQL call and answers `{ person_id, workspace_id }`. */
async function provision(
  sql: Sql,
  userId: string,
  now: Date,
  log: Logger,
  source: string,
): Promise<Response> {
  const provisioned = await callFunction<ProvisionResult>(
    sql,
    "identity.provision_auth_user",
    userId,
    now,
  );
  if ("ignored" in provisioned) {
    log.info("signup event ignored", { source, user_id: userId, reason: provisioned.ignored });
    return json({ ignored: true });
  }
  if (provisioned.email_conflict) {
    // Never merged into the person who holds the address: this person keeps no email.
    log.warn("email already belongs to another person; kept without email", {
      person_id: provisioned.person_id,
    });
  }
  log.info("user provisioned", {
    source,
    person_id: provisioned.person_id,
    workspace_id: provisioned.workspace_id,
  });
  return json({ person_id: provisioned.person_id, workspace_id: provisioned.workspace_id });
}

function ignored(log: Logger, source: string): Response {
  log.info("signup event ignored", { source });
  return json({ ignored: true });
}
