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
 *   is 200 `{ received, statuses }`, the numbers of messages and statuses read from it (skipped
 *   ones, below, not counted).
 *
 * Meta retries anything but a 200 for days, and a retry brings the same bytes, so no content of a
 * signed delivery may fail it (SPEC §13.5): only a body that is not JSON at all is 400. The parsed
 * body is cleaned first (json_sanitize.ts: lone surrogates and U+0000 become U+FFFD, strings are
 * cut at 4096 characters, numbers JSON cannot hold are dropped, nesting is cut at 64 levels), and
 * then read leniently (SPEC §6: unknown fields and types are stored, not rejected):
 * - a field of an unexpected type reads as absent (a message is stored with a null sender, time,
 *   type or text, and its whole raw JSON);
 * - only a message or status without a usable wamid (a string of 1 to 256 characters), or a status
 *   without a status string, is skipped, since nothing could deduplicate or apply it; the rest of
 *   the delivery is stored, and the skipped items are counted in a warning;
 * - a body that is not an object, another webhook object (an app that also subscribes to Page or
 *   Instagram webhooks signs them with the same secret) or another `messages` field is answered
 *   200 with zero counts.
 * Nothing runs after the store that could fail the answer. Logs carry ids and counts, never
 * content.
 */
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError, json, parseJson, readBody } from "../_shared/http.ts";
import { cutText, hasFixes, sanitizeJson } from "../_shared/json_sanitize.ts";
import type { Logger } from "../_shared/log.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { secretsEqual, verifyMetaSignature } from "../_shared/signatures.ts";
import { type MessageRow, type StatusRow, storeDelivery } from "../_shared/whatsapp_store.ts";

/** The WhatsApp body limit (SPEC §4); more is 413 without being read whole. */
export const maxDeliveryBytes = 3 * 1024 * 1024; // 3 MiB
/** Ids per log line: enough to trace a delivery, bounded however large it is. */
const maxLoggedWamids = 20;
const maxChallengeLength = 256;
/** Longest wamid kept (Meta's are about 60 characters); a longer one skips its message. */
const maxWamidLength = 256;
/** Longest phone number id, WhatsApp id or status value kept; a longer one reads as absent. */
const maxIdLength = 64;
/** Longest contact profile name kept; a longer one is cut. */
const maxProfileNameLength = 256;
/** Latest unix time read from a timestamp (year 33658; Postgres goes to 294276). */
const maxUnixSeconds = 999_999_999_999;

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

    const { value: payload, fixes } = sanitizeJson(parseJson(body));
    if (hasFixes(fixes)) log.warn("whatsapp_delivery_sanitized", { ...fixes });
    const delivery = readDelivery(payload, log);
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

/** What could not be stored, counted for the log line. */
interface Skipped {
  entries: number;
  changes: number;
  messages: number;
  statuses: number;
}

/**
 * Turns a cleaned, signed delivery into store rows, reading every field leniently: whatever type
 * a field has, the delivery is answered 200. Another webhook object, or a change of another field,
 * is not ours and yields nothing.
 */
function readDelivery(payload: unknown, log: Logger): Delivery {
  const delivery: Delivery = { messages: [], statuses: [], wamids: [] };
  const body = asRecord(payload);
  if (body?.object !== "whatsapp_business_account") {
    log.info("whatsapp_delivery_ignored", { object: body ? "other" : "not_an_object" });
    return delivery;
  }
  // An `entry` that is not an array counts as one unreadable entry.
  const skipped: Skipped = {
    entries: Array.isArray(body.entry) ? 0 : 1,
    changes: 0,
    messages: 0,
    statuses: 0,
  };
  const changeErrorCodes: number[] = [];
  for (const item of asList(body.entry)) {
    const entry = asRecord(item);
    if (!entry) {
      skipped.entries++;
      continue;
    }
    for (const changeItem of asList(entry.changes)) {
      const change = asRecord(changeItem);
      if (change?.field !== "messages") continue; // templates, account updates, calls: not ours
      const value = asRecord(change.value);
      if (!value) {
        skipped.changes++;
        continue;
      }
      addChange(delivery, skipped, value);
      for (const error of asList(value.errors)) {
        const code = asRecord(error)?.code;
        if (typeof code === "number") changeErrorCodes.push(code);
      }
    }
  }
  if (Object.values(skipped).some((count) => count > 0)) {
    log.warn("whatsapp_delivery_items_skipped", { ...skipped });
  }
  if (changeErrorCodes.length > 0) {
    log.warn("whatsapp_delivery_errors", { codes: changeErrorCodes.slice(0, maxLoggedWamids) });
  }
  return delivery;
}

function addChange(delivery: Delivery, skipped: Skipped, value: Record<string, unknown>): void {
  const phoneNumberId = asText(asRecord(value.metadata)?.phone_number_id, maxIdLength);
  const contacts = asList(value.contacts).map((item) => {
    const contact = asRecord(item);
    const name = asRecord(contact?.profile)?.name;
    return {
      waId: asText(contact?.wa_id, maxIdLength),
      profileName: typeof name === "string" && name !== ""
        ? cutText(name, maxProfileNameLength)
        : null,
    };
  });
  const onlyContact = contacts.length === 1 ? contacts[0] : undefined;

  for (const item of asList(value.messages)) {
    const message = asRecord(item);
    const wamid = asText(message?.id, maxWamidLength);
    if (!message || wamid === null) {
      skipped.messages++;
      continue;
    }
    const waId = asText(message.from, maxIdLength) ?? onlyContact?.waId ?? null;
    const contact = contacts.find((c) => c.waId !== null && c.waId === waId) ?? onlyContact;
    const type = asText(message.type, maxIdLength);
    const textBody = asRecord(message.text)?.body;
    delivery.messages.push({
      wamid,
      phone_number_id: phoneNumberId,
      wa_id: waId,
      profile_name: contact?.profileName ?? null,
      type,
      text_body: type === "text" && typeof textBody === "string" ? textBody : null,
      sent_at: asUnixSeconds(message.timestamp),
      errors: Array.isArray(message.errors) ? message.errors : null,
      raw: message,
    });
    delivery.wamids.push(wamid);
  }

  for (const item of asList(value.statuses)) {
    const status = asRecord(item);
    const wamid = asText(status?.id, maxWamidLength);
    const statusValue = asText(status?.status, maxIdLength);
    if (!status || wamid === null || statusValue === null) {
      skipped.statuses++;
      continue;
    }
    delivery.statuses.push({
      wamid,
      status: statusValue,
      status_at: asUnixSeconds(status.timestamp),
      recipient_id: asText(status.recipient_id, maxIdLength),
      phone_number_id: phoneNumberId,
      errors: Array.isArray(status.errors) ? status.errors : null,
    });
    delivery.wamids.push(wamid);
  }
}

function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : null;
}

/** The items of an array; anything else reads as no items. */
function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A non-empty string of at most `maxLength` characters, else null. */
function asText(value: unknown, maxLength: number): string | null {
  return typeof value === "string" && value !== "" && value.length <= maxLength ? value : null;
}

/**
 * Meta's timestamps: unix seconds as a string of digits (what Meta sends) or as an integer; null
 * for anything else or out of range (`Number.MAX_SAFE_INTEGER` seconds is no date Postgres has).
 */
function asUnixSeconds(value: unknown): number | null {
  const seconds = typeof value === "string" && /^\d{1,12}$/.test(value) ? Number(value) : value;
  return typeof seconds === "number" && Number.isInteger(seconds) && seconds >= 0 &&
      seconds <= maxUnixSeconds
    ? seconds
    : null;
}
