/**
 * Storing a WhatsApp delivery (SPEC §6 whatsapp-webhook): every message and status of one
 * delivery in one SQL call, deduplicated on wamid, statuses only moving forward.
 */
import { callFunction, type Database } from "./db.ts";

/** A message row as whatsapp.store_delivery reads it. */
export interface MessageRow {
  wamid: string;
  phone_number_id: string | null;
  wa_id: string | null;
  profile_name: string | null;
  type: string | null;
  text_body: string | null;
  /** Unix seconds. */
  sent_at: number | null;
  errors: unknown[] | null;
  raw: unknown;
}

/** A status row as whatsapp.store_delivery reads it. */
export interface StatusRow {
  wamid: string;
  status: string;
  /** Unix seconds. */
  status_at: number | null;
  recipient_id: string | null;
  phone_number_id: string | null;
  errors: unknown[] | null;
}

/** What the store did: counts only. */
export interface StoreResult {
  messages: number;
  messages_stored: number;
  statuses: number;
  statuses_applied: number;
  statuses_ignored: number;
  outbound_created: number;
}

/** Stores a delivery's messages and applies its statuses, in one round trip. */
export async function storeDelivery(
  sql: Database,
  delivery: { messages: MessageRow[]; statuses: StatusRow[] },
  now: Date,
): Promise<StoreResult> {
  return await callFunction(sql, "whatsapp.store_delivery", {
    p_messages: delivery.messages,
    p_statuses: delivery.statuses,
    p_now: now,
  });
}
