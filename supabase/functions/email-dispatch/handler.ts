/**
 * email-dispatch — delivers the email outbox through Resend (SPEC §11). Called every minute by
 * pg_cron through pg_net, right after rows become ready (a trigger, best effort), and by
 * `npm run dev`'s loop. Mode `secret`: a secret API key (or the legacy service_role JWT) in
 * `apikey` or `Authorization: Bearer`; deploy with verify_jwt = false. Without RESEND_API_KEY,
 * EMAIL_FROM or SITE_URL it answers 503 EMAIL_NOT_CONFIGURED naming the variable, and the rows wait.
 *
 * `POST` (any body) → 200 `{ sent, retried, failed }` for this run. A run claims batches of due
 * rows (each row leased to it in the claiming statement, so concurrent runs never share one),
 * renders each email, sends it with `Idempotency-Key` = the row id, and records the batch's
 * outcomes in one SQL call. A run stops taking rows after {@linkcode runBudgetMs}, and stops
 * starting sends after the first retryable failure (Resend down or throttling us): the rows it has
 * not tried are released untouched rather than each spending an attempt on a provider that is
 * failing. Resend refusing our key or sender is a 503 naming the variable; no row is blamed.
 */
import type { Database } from "../_shared/db.ts";
import type { Deps } from "../_shared/deps.ts";
import {
  type Claim,
  claimDueEmails,
  type ClaimedEmail,
  type EmailOutcome,
  type RecordedOutcomes,
  recordEmailOutcomes,
} from "../_shared/email_outbox.ts";
import { isEmailTemplate, renderEmail } from "../_shared/email_templates.ts";
import { type Handler, json } from "../_shared/http.ts";
import { errorFields, type Logger } from "../_shared/log.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import type { SendResult } from "../_shared/resend.ts";
import { type EmailServices, notConfigured } from "../_shared/services.ts";

/**
 * Sends in flight at once. Resend's default rate limit is 2 requests per second per team; its
 * `ratelimit-*` headers pace the run beyond that (see `pace`).
 */
export const sendConcurrency = 2;
/** After this long a run takes no more rows and starts no more sends (pg_net waits 60 s). */
export const runBudgetMs = 30_000; // 30 s
/** The longest pause the rate-limit headers may impose before a send. */
const maxPaceMs = 5_000; // 5 s

interface RunState {
  /** No new send starts: a retryable failure, a misconfiguration, or the budget is spent. */
  stopped: boolean;
  /** Resend refused our key or sender: the run answers 503 naming the variable. */
  misconfigured: Extract<SendResult, { kind: "misconfigured" }> | null;
  /** When the next send may start (epoch ms), from Resend's rate-limit headers. */
  notBefore: number;
  deadline: number;
}

export function createHandler(deps: Deps): Handler {
  return defineHandler(deps, {
    name: "email-dispatch",
    methods: ["POST"],
    auth: "secret",
    requires: ["core", "email"],
  }, async (_req, { core, email, log }) => {
    const state: RunState = {
      stopped: false,
      misconfigured: null,
      notBefore: 0,
      deadline: performance.now() + runBudgetMs,
    };
    const totals = await dispatchDue(core.sql, deps.now, email, state, log);
    // The request line is the heartbeat; a run that touched rows also says what it did.
    if (totals.batches > 0 || totals.failed > 0) log.info("email_dispatch_run", { ...totals });
    if (state.misconfigured) {
      const { variable, code } = state.misconfigured;
      throw notConfigured("email", `${variable} was refused by Resend (${code})`);
    }
    return json({ sent: totals.sent, retried: totals.retried, failed: totals.failed });
  });
}

interface RunTotals extends RecordedOutcomes {
  batches: number;
}

/**
 * Claims, sends and records batches until no row is due, the run stops or its budget is spent.
 * The database round trips are kept off the sends' path: the next batch is claimed while this one
 * is sent, and a batch's outcomes are recorded while the next one is sent.
 */
async function dispatchDue(
  sql: Database,
  now: () => Date,
  services: EmailServices,
  state: RunState,
  log: Logger,
): Promise<RunTotals> {
  const totals: RunTotals = { sent: 0, retried: 0, failed: 0, released: 0, batches: 0 };
  const recordings: Promise<void>[] = [];
  const record = (outcomes: EmailOutcome[]) => {
    recordings.push(
      recordEmailOutcomes(sql, outcomes, now()).then((recorded) => {
        totals.sent += recorded.sent;
        totals.retried += recorded.retried;
        totals.failed += recorded.failed;
        totals.released += recorded.released;
      }),
    );
  };
  const claim = () =>
    claimDueEmails(sql, now()).then((claimed) => {
      totals.failed += claimed.abandoned;
      if (claimed.abandoned > 0) log.warn("email_abandoned", { rows: claimed.abandoned });
      return claimed;
    });
  const canGoOn = () => !state.stopped && performance.now() < state.deadline;

  let next: Promise<Claim> | null = claim();
  let failure: { error: unknown } | null = null;
  try {
    while (next) {
      const batch: Claim = await next;
      next = batch.more && canGoOn() ? claim() : null;
      if (batch.emails.length > 0) {
        totals.batches++;
        record(await sendAll(batch.emails, services, state, log));
      }
      if (next && !canGoOn()) {
        // Claimed ahead, then the run stopped: those rows go back untried.
        const unsent: Claim = await next;
        next = null;
        record(unsent.emails.map(({ id }) => ({ id, outcome: "release" })));
      }
    }
  } catch (error) {
    failure = { error };
    next?.catch(() => {}); // its rows wait for their lease to end
  }
  // Every recording is awaited, also after a failure: none may fail unobserved.
  for (const settled of await Promise.allSettled(recordings)) {
    if (settled.status === "rejected") failure ??= { error: settled.reason };
  }
  if (failure) throw failure.error;
  return totals;
}

/** Sends a batch, {@linkcode sendConcurrency} at a time; one outcome per email, in order. */
async function sendAll(
  emails: ClaimedEmail[],
  services: EmailServices,
  state: RunState,
  log: Logger,
): Promise<EmailOutcome[]> {
  const outcomes: EmailOutcome[] = new Array(emails.length);
  let next = 0;
  const worker = async () => {
    while (next < emails.length) {
      const index = next++;
      outcomes[index] = await deliver(emails[index], services, state, log);
    }
  };
  await Promise.all(Array.from({ length: Math.min(sendConcurrency, emails.length) }, worker));
  return outcomes;
}

/** Renders and sends one claimed email, and says what became of it. */
async function deliver(
  email: ClaimedEmail,
  { config, resend }: EmailServices,
  state: RunState,
  log: Logger,
): Promise<EmailOutcome> {
  const { id } = email;
  if (!isEmailTemplate(email.template)) {
    log.warn("email_failed", { outbox_id: id, code: "unknown_template" });
    return { id, outcome: "reject", error: "unknown template" };
  }
  await pace(state);
  if (state.stopped || performance.now() >= state.deadline) return { id, outcome: "release" };

  let result: SendResult;
  try {
    const rendered = renderEmail(email.template, email.payload, {
      siteUrl: config.siteUrl,
      toEmail: email.to_email,
    });
    result = await resend.send(
      { to: email.to_email, ...rendered, tags: [{ name: "template", value: email.template }] },
      id,
    );
  } catch (error) {
    // A bug, not the provider: the row is tried again later, the run stops here.
    log.error("email_send_error", { outbox_id: id, ...errorFields(error) });
    state.stopped = true;
    return { id, outcome: "retry", error: "internal error while sending" };
  }
  if ((result.kind === "sent" || result.kind === "retryable") && result.rateLimit) {
    const { remaining, resetSeconds } = result.rateLimit;
    if (remaining === 0) {
      state.notBefore = Math.max(state.notBefore, Date.now() + resetSeconds * 1000);
    }
  }
  switch (result.kind) {
    case "sent":
      log.info("email_sent", { outbox_id: id, template: email.template, provider_id: result.id });
      return { id, outcome: "sent", provider_id: result.id };
    case "retryable":
      state.stopped = true;
      log.warn("email_retry", { outbox_id: id, attempt: email.attempt, code: result.code });
      return {
        id,
        outcome: "retry",
        error: result.error,
        ...(result.retryAfterSeconds !== undefined
          ? { retry_after_seconds: result.retryAfterSeconds }
          : {}),
      };
    case "rejected":
      log.warn("email_failed", { outbox_id: id, attempt: email.attempt, code: result.code });
      return { id, outcome: "reject", error: result.error };
    case "misconfigured":
      state.stopped = true;
      state.misconfigured ??= result;
      log.error("email_provider_refused_config", { variable: result.variable, code: result.code });
      return { id, outcome: "release" };
  }
}

/** Waits until Resend's rate-limit window allows the next send (at most {@linkcode maxPaceMs}). */
async function pace(state: RunState): Promise<void> {
  const waitMs = Math.min(state.notBefore - Date.now(), maxPaceMs);
  if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
}
