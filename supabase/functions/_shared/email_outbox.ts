/**
 * The email outbox's delivery seam (SPEC §11): claiming due rows and recording what became of
 * them, one SQL call each (migration 20261129000500_email_delivery.sql). Batch size, lease, backoff
 * and the number of attempts are policy numbers in SQL (`identity.policy`), not here.
 */
import { callFunction, type Database } from "./db.ts";

/** An outbox row a run has claimed: leased to this run until it records an outcome. */
export interface ClaimedEmail {
  /** The row id, also the `Idempotency-Key` of every attempt. */
  id: string;
  to_email: string;
  template: string;
  payload: Record<string, unknown>;
  /** This attempt's number, 1 for the first. */
  attempt: number;
}

export interface Claim {
  emails: ClaimedEmail[];
  /** Rows failed by this claim: their last permitted attempt never reported back. */
  abandoned: number;
  /** The batch was full: more rows may be due. */
  more: boolean;
}

/** What became of a claimed row. */
export type EmailOutcome =
  | { id: string; outcome: "sent"; provider_id: string }
  | { id: string; outcome: "retry"; error: string; retry_after_seconds?: number }
  | { id: string; outcome: "reject"; error: string }
  | { id: string; outcome: "release" };

export interface RecordedOutcomes {
  sent: number;
  /** Due again later, with backoff. */
  retried: number;
  /** Rejected, or failed for the last permitted time. */
  failed: number;
  /** Not tried in this run; due again at once, attempt given back. */
  released: number;
}

/**
 * Claims up to a batch of due `ready` rows (`for update skip locked`) and leases them to the
 * caller in the same statement, so no concurrent run can take them.
 */
export async function claimDueEmails(sql: Database, now: Date): Promise<Claim> {
  return await callFunction(sql, "identity.claim_due_emails", { p_now: now });
}

/** Records the outcomes of claimed rows in one round trip; rows no longer ready are left alone. */
export async function recordEmailOutcomes(
  sql: Database,
  outcomes: EmailOutcome[],
  now: Date,
): Promise<RecordedOutcomes> {
  if (outcomes.length === 0) return { sent: 0, retried: 0, failed: 0, released: 0 };
  return await callFunction(sql, "identity.record_email_outcomes", {
    p_outcomes: outcomes,
    p_now: now,
  });
}
