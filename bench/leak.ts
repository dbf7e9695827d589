/**
 * No leak: the local server, in a process of its own (server_process.ts), answers 20,000 `me`
 * requests from 32 clients; its resident set size after 20,000 must be within 10 % of its size
 * after 2,000, when its pool, caches and compiled code are warm. The size is read every 2,000
 * requests and printed, so a slow climb shows even within the target; beside it, the JS heap the
 * server retains after a full collection, at the first and the last reading (after RSS is read):
 * RSS that grows while the retained heap does not is V8 sizing its heap, not a leak.
 */
import type { Sql } from "../supabase/functions/_shared/db.ts";
import type { BenchResult } from "./harness.ts";
import { signInSessions, underLoad } from "./load.ts";
import { startServerProcess } from "./server_process.ts";

export interface LeakOptions {
  sql: Sql;
  env: Record<string, string>;
  clients?: number;
  /** Requests between two readings; the first reading is the baseline. */
  step?: number;
  /** Requests in all. */
  requests?: number;
}

const megabyte = 1024 * 1024;

export async function benchLeak(options: LeakOptions): Promise<BenchResult> {
  const { sql, env } = options;
  const clients = options.clients ?? 32;
  const step = options.step ?? 2_000;
  const requests = options.requests ?? 20_000;
  const sessions = await signInSessions(sql, env, clients);
  const server = await startServerProcess(env, { exposeGc: true });
  try {
    const url = `${server.functionsUrl}/me`;
    const headers = sessions.map((s) => ({ authorization: `Bearer ${s.access_token}` }));
    const readings: { after: number; rss: number }[] = [];
    const retained: number[] = [];
    let done = 0;
    while (done < requests) {
      await underLoad(clients, step, async (i) => {
        const res = await fetch(url, { headers: headers[i] });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`me answered ${res.status}`);
      }, { warmup: 0 });
      done += step;
      readings.push({ after: done, rss: await server.rss() });
      if (done === step || done >= requests) retained.push(await server.retainedHeap());
    }
    const first = readings[0], last = readings[readings.length - 1];
    const mb = (bytes: number) => (bytes / megabyte).toFixed(1);
    return {
      name: `no leak: local server RSS over ${requests} me requests (${clients} clients)`,
      rate: last.rss / megabyte,
      baselineRate: first.rss / megabyte,
      target: null,
      unit: `MB after ${last.after}`,
      baseline: `the same process after ${first.after}`,
      checks: [{
        what: `RSS after ${last.after} ÷ RSS after ${first.after}`,
        value: last.rss / first.rss,
        atMost: 1.1,
      }],
      notes: [
        `RSS (MB) every ${step} requests: ${readings.map((r) => mb(r.rss)).join(", ")}`,
        `JS heap retained after a full GC (MB): ${mb(retained[0])} after ${first.after}, ` +
        `${mb(retained[retained.length - 1])} after ${last.after}`,
      ],
    };
  } finally {
    await server.close();
  }
}
