/**
 * email-dispatch: 500 ready outbox rows dispatched to the local Resend emulator (claims, rendering,
 * one POST per row with its idempotency key, recording), against a baseline that only POSTs the
 * same 500 rendered emails (serialising each and reading its JSON answer) to the same emulator
 * from the same process, as many at once as the dispatcher sends. The ratio is what the outbox
 * costs on top of the sends themselves. Rows are queued before each timed dispatch, outside the
 * measurement; the two are timed in alternating rounds and each rate is the median of its rounds
 * (harness.ts's convention).
 */
import { startResendEmulator } from "../local/emulators/resend.ts";
import type { Sql } from "../supabase/functions/_shared/db.ts";
import { defaultDeps } from "../supabase/functions/_shared/deps.ts";
import { renderEmail } from "../supabase/functions/_shared/email_templates.ts";
import { createLogger } from "../supabase/functions/_shared/log.ts";
import { createHandler, sendConcurrency } from "../supabase/functions/email-dispatch/handler.ts";
import { type CpuMeter, type CpuTime, cpuUsed } from "./cpu.ts";
import type { BenchResult } from "./harness.ts";

const rowsPerRound = 500;
const rounds = 7;
const from = "Platform <no-reply@bench.test>";
const siteUrl = "https://app.bench.test";
const payload = { workspace_name: "Bench workspace", display_name: "Bench person" };
const secretKey = "sb_secret_bench_0123456789abcdefghijklmnopqrstuv";

export async function benchEmailDispatch(
  options: { sql: Sql; env: Record<string, string>; cpu?: CpuMeter },
): Promise<BenchResult> {
  const { sql } = options;
  const resend = await startResendEmulator();
  try {
    const env = {
      ...options.env,
      SUPABASE_SECRET_KEYS: JSON.stringify({ bench: secretKey }),
      RESEND_API_KEY: resend.apiKey,
      RESEND_API_URL: resend.url,
      EMAIL_FROM: from,
      SITE_URL: siteUrl,
    };
    const handler = createHandler(
      defaultDeps(env, { sql, log: createLogger({ level: "warn" }) }),
    );
    // Rows other benchmarks queued (welcome emails of their sign-ins) are not this one's.
    await sql`delete from identity.email_outbox where status = 'ready'`;

    const dispatchRows = async (): Promise<number> => {
      const startedAt = performance.now();
      const res = await handler(
        new Request("http://127.0.0.1/functions/v1/email-dispatch", {
          method: "POST",
          headers: { apikey: secretKey },
        }),
      );
      const body = await res.json();
      const seconds = (performance.now() - startedAt) / 1000;
      if (res.status !== 200 || body.sent !== rowsPerRound) {
        throw new Error(`email-dispatch answered ${res.status} ${JSON.stringify(body)}`);
      }
      return seconds;
    };

    // The same emails, rendered outside the measurement; each is serialised, POSTed with a fresh
    // key and its JSON answer read, which any client sending them does.
    const emails = Array.from({ length: rowsPerRound }, (_, i) => {
      const to = `bench.baseline.${i}@example.test`;
      const rendered = renderEmail("welcome", payload, { siteUrl, toEmail: to });
      return { from, to: [to], ...rendered, tags: [{ name: "template", value: "welcome" }] };
    });
    const postRows = async (): Promise<number> => {
      const startedAt = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: sendConcurrency }, async () => {
        while (next < emails.length) {
          const res = await fetch(`${resend.url}/emails`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${resend.apiKey}`,
              "content-type": "application/json",
              "idempotency-key": crypto.randomUUID(),
            },
            body: JSON.stringify(emails[next++]),
          });
          const answer = await res.json();
          if (res.status !== 200 || typeof answer.id !== "string") {
            throw new Error(`the emulator answered ${res.status}`);
          }
        }
      }));
      return (performance.now() - startedAt) / 1000;
    };

    const baseline = {
      prepare: async () => {},
      run: postRows,
      rates: [] as number[],
      cpu: cpuTally(),
    };
    const subject = {
      prepare: () => queueRows(sql, rowsPerRound),
      run: dispatchRows,
      rates: [] as number[],
      cpu: cpuTally(),
    };
    for (let round = -1; round < rounds; round++) { // round -1 warms both sides up
      for (const side of [baseline, subject]) {
        await side.prepare();
        const before = await options.cpu?.();
        const seconds = await side.run();
        const after = await options.cpu?.();
        if (round < 0) continue;
        side.rates.push(rowsPerRound / seconds);
        if (before && after) side.cpu.add(cpuUsed(before, after), rowsPerRound);
      }
    }
    const sent = resend.mailbox().length;
    const expected = (rounds + 1) * rowsPerRound * 2;
    if (sent !== expected) {
      throw new Error(`the emulator holds ${sent} emails, expected ${expected}`);
    }
    return {
      name: "email-dispatch",
      rate: median(subject.rates),
      baselineRate: median(baseline.rates),
      cpu: options.cpu
        ? { subject: subject.cpu.perOperation(), baseline: baseline.cpu.perOperation() }
        : undefined,
      target: 0.7,
      unit: `emails/s (${rowsPerRound} ready rows per run, ${sendConcurrency} sends in flight)`,
      baseline: `the same ${rowsPerRound} emails POSTed to the emulator, nothing else`,
    };
  } finally {
    await resend.close();
  }
}

/** `count` ready welcome emails, each to a new person, in one statement. */
async function queueRows(sql: Sql, count: number): Promise<void> {
  const run = crypto.randomUUID().slice(0, 8);
  await sql`
    with p as (
      insert into identity.person (email)
      select 'bench.mail.' || ${run} || '.' || i || '@example.test' from generate_series(1, ${count}) i
      returning id, email
    )
    insert into identity.email_outbox (person_id, to_email, template, status, payload, ready_at)
    select p.id, p.email, 'welcome', 'ready', ${sql.json(payload)}, now() from p`;
}

function cpuTally() {
  let operations = 0, process = 0, database: number | null = 0;
  return {
    add(used: CpuTime, count: number) {
      operations += count;
      process += used.process;
      database = database === null || used.database === null ? null : database + used.database;
    },
    perOperation: (): CpuTime => ({
      process: process / operations,
      database: database === null ? null : database / operations,
    }),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
