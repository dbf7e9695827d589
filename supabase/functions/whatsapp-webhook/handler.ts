/**
 * whatsapp-webhook — called by Meta for the WhatsApp Cloud API (mode `none`: Meta sends no
 * JWT; it is authenticated by the verify token on GET and the app-secret signature on POST).
 *
 * - `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` (Meta's subscription check):
 *   200 `text/plain` challenge when the token equals WHATSAPP_VERIFY_TOKEN, else 403 FORBIDDEN.
 * - `POST` a `whatsapp_business_account` delivery signed with `X-Hub-Signature-256`: the
 *   signature is checked over the raw bytes (3 MiB at most) before anything is parsed (401
 *   INVALID_SIGNATURE), then every message and status of every entry and change is stored in one
 *   SQL call (deduplicated on wamid, statuses monotonic), and the answer
 *   is 200 `{ received, statuses }`, the numbers of messages and statuses in the delivery.
 *
 * Meta retries anything but a 200 for days, so: nothing runs after the store that could fail it;
 * a signed delivery for another webhook object (an app that also subscribes to Page or Instagram
 * webhooks signs them with the same secret) or another `messages` field is answered 200 with
 * zero counts; only malformed JSON or a WhatsApp payload with wrong types is 400, which a
 * retry cannot fix but a person reading the logs can. Logs carry ids and counts, never content.
 */
import { z } from "zod";
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError, json, parseJson, readBody } from "../_shared/http.ts";
import type { Logger } from "../_shared/log.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { secretsEqual, verifyMetaSignature } from "../_shared/signatures.ts";
import { validate } from "../_shared/validate.ts";
import { type MessageRow, type StatusRow, storeDelivery } from "../_shared/whatsapp_store.ts";

/** The WhatsApp body limit (SPEC §4); more is 413 without being read whole. */
export const maxDeliveryBytes = 3 * 1024 * 1024; // 3 MiB
/** Ids per log line: enough to trace a delivery, bounded however large it is. */
const maxLoggedWamids = 20;
const maxChallengeLength = 256;

const unixSeconds = z.union([
  z.string().regex(/^\d{1,12}$/, "must be unix seconds"),
  z.number().int().nonnegative(),
]);
const errorList = z.array(z.unknown());

// Only what the store reads is typed; every other field (and every message type, known or not)
// is kept as it came in the message's raw JSON.
const messageSchema = z.looseObject({
  id: z.string().min(1).max(256),
  from: z.string().max(64).optional(),
  timestamp: unixSeconds.optional(),
  type: z.string().max(64).optional(),
  errors: errorList.optional(),
});

const statusSchema = z.looseObject({
  id: z.string().min(1).max(256),
  status: z.string().min(1).max(64),
  timestamp: unixSeconds.optional(),
  recipient_id: z.string().max(64).optional(),
  errors: errorList.optional(),
});

const contactSchema = z.looseObject({
  wa_id: z.string().max(64).optional(),
  profile: z.looseObject({ name: z.string().optional() }).optional(),
});

/** `entry[].changes[].value` of the `messages` field. */
const messagesValueSchema = z.looseObject({
  metadata: z.looseObject({ phone_number_id: z.string().max(64).optional() }).optional(),
  contacts: z.array(contactSchema).optional(),
  messages: z.array(messageSchema).optional(),
  statuses: z.array(statusSchema).optional(),
  errors: errorList.optional(),
});

const deliverySchema = z.looseObject({
  object: z.string(),
  entry: z.array(z.looseObject({
    id: z.string().optional(),
    changes: z.array(z.looseObject({ field: z.string().optional(), value: z.unknown() }))
      .optional(),
  })),
});

type MessagesValue = z.output<typeof messagesValueSchema>;

export function createHandler(deps: Deps): Handler {
  return defineHandler(deps, {
    name: "whatsapp-webhook",
    methods: ["GET", "POST"],
    auth: "none",
    requires: ["whatsapp", "database"],
  }, async (req, { whatsapp, database, log, now }) => {
    if (req.method === "GET") return await verifySubscription(req, whatsapp.verifyToken);

    const body = await readBody(req, maxDeliveryBytes);
    // Authenticate the exact bytes Meta signed before parsing anything: a parser never sees
    // input from someone without the app secret.
    const signature = req.headers.get("x-hub-signature-256");
    if (!await verifyMetaSignature(body, signature, whatsapp.appSecret)) {
      throw new HttpError(401, "INVALID_SIGNATURE", "X-Hub-Signature-256 is missing or invalid");
    }

    const delivery = readDelivery(parseJson(body), log);
    if (delivery.messages.length === 0 && delivery.statuses.length === 0) {
      return json({ received: 0, statuses: 0 });
    }
    const stored = await storeDelivery(database, delivery, now);
    // Stored: from here on nothing may turn this into a non-200, or Meta would retry it.
    log.info("whatsapp_delivery_stored", {
      ...stored,
      wamids: delivery.wamids.slice(0, maxLoggedWamids),
    });
    return json({ received: delivery.messages.length, statuses: delivery.statuses.length });
  });
}

/** Meta's subscription check: echo the challenge only for the right mode and token. */
async function verifySubscription(req: Request, verifyToken: string): Promise<Response> {
  const params = new URL(req.url).searchParams;
  const mode = params.get("hub.mode");
  const token = params.get("hub.verify_token") ?? "";
  const challenge = params.get("hub.challenge") ?? "";
  // The token is a shared secret: compared in constant time (and length), never with ===.
  const tokenMatches = await secretsEqual(token, verifyToken);
  if (
    mode !== "subscribe" || !tokenMatches || !challenge || challenge.length > maxChallengeLength
  ) {
    throw new HttpError(403, "FORBIDDEN", "Webhook verification failed");
  }
  return new Response(challenge, {
    status: 200,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      // The challenge is caller-chosen text: never let a browser sniff it into HTML.
      "x-content-type-options": "nosniff",
    },
  });
}

interface Delivery {
  messages: MessageRow[];
  statuses: StatusRow[];
  /** Message and status ids, for the log line (ids only, never content). */
  wamids: string[];
}

/**
 * Turns a signed delivery into store rows. Another webhook object, or a change of another field,
 * is not ours and yields nothing; a WhatsApp payload with wrong types is 400 naming the field.
 */
function readDelivery(payload: unknown, log: Logger): Delivery {
  const delivery: Delivery = { messages: [], statuses: [], wamids: [] };
  if (!isRecord(payload)) {
    throw new HttpError(400, "VALIDATION_FAILED", "Body must be a JSON object");
  }
  if (payload.object !== "whatsapp_business_account") {
    log.info("whatsapp_delivery_ignored", { object: "other" });
    return delivery;
  }
  const { entry } = validate(deliverySchema, payload);
  const changeErrorCodes: unknown[] = [];
  entry.forEach((item, i) => {
    item.changes?.forEach((change, j) => {
      if (change.field !== "messages") return; // templates, account updates, calls: not stored here
      const value = validate(messagesValueSchema, change.value, {
        at: `entry.${i}.changes.${j}.value`,
      });
      addChange(delivery, value);
      for (const error of value.errors ?? []) {
        if (isRecord(error) && typeof error.code === "number") changeErrorCodes.push(error.code);
      }
    });
  });
  if (changeErrorCodes.length > 0) {
    log.warn("whatsapp_delivery_errors", { codes: changeErrorCodes });
  }
  return delivery;
}

function addChange(delivery: Delivery, value: MessagesValue): void {
  const phoneNumberId = value.metadata?.phone_number_id ?? null;
  const contacts = value.contacts ?? [];
  for (const message of value.messages ?? []) {
    const waId = message.from ?? (contacts.length === 1 ? contacts[0].wa_id : undefined) ?? null;
    const contact = contacts.find((c) => c.wa_id !== undefined && c.wa_id === waId) ??
      (contacts.length === 1 ? contacts[0] : undefined);
    const text = message.text;
    delivery.messages.push({
      wamid: message.id,
      phone_number_id: phoneNumberId,
      wa_id: waId,
      profile_name: contact?.profile?.name ?? null,
      type: message.type ?? null,
      text_body: message.type === "text" && isRecord(text) && typeof text.body === "string"
        ? text.body
        : null,
      sent_at: message.timestamp === undefined ? null : Number(message.timestamp),
      errors: message.errors ?? null,
      raw: message,
    });
    delivery.wamids.push(message.id);
  }
  for (const status of value.statuses ?? []) {
    delivery.statuses.push({
      wamid: status.id,
      status: status.status,
      status_at: status.timestamp === undefined ? null : Number(status.timestamp),
      recipient_id: status.recipient_id ?? null,
      phone_number_id: phoneNumberId,
      errors: status.errors ?? null,
    });
    delivery.wamids.push(status.id);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
