/**
 * Under load: `me`, bearer refresh (`POST refresh` with `Authorization: Bearer <access token>`,
 * no body) and rotating refresh (`POST refresh {refresh_token}`, each client keeping its own
 * session and presenting the successor every time) through the local server, run in a process of
 * its own (server_process.ts), 32 clients at once for a fixed number of requests each. Printed:
 * requests/s (against a baseline server doing a JWT verify and `select 1` on the same pool, in the
 * same process, under the same load) and the p50 and p99 latencies; the target is a tail no
 * longer than four times the median: p99 ≤ 4 × p50.
 */
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import type { Sql } from "../supabase/functions/_shared/db.ts";
import { signIn } from "../supabase/functions/_shared/session_store.ts";
import { createSessionTokens, tokenResponse } from "../supabase/functions/_shared/tokens.ts";
import { type BenchResult, percentile } from "./harness.ts";
import { startServerProcess } from "./server_process.ts";

export interface LoadOptions {
  sql: Sql;
  env: Record<string, string>;
  clients?: number;
  /** Requests measured per figure (after a warm-up of 10 per client). */
  requests?: number;
}

/** A signed-in session's tokens. */
export interface SignedInSession {
  access_token: string;
  refresh_token: string;
}

/** What a fixed number of requests took. */
export interface LoadFigures {
  requestsPerSecond: number;
  /** Latencies in milliseconds. */
  p50: number;
  p99: number;
}

/** The p99 may be at most this many times the p50. */
export const tailTarget = 4;

export async function benchLoad(options: LoadOptions): Promise<BenchResult[]> {
  const { sql, env } = options;
  const clients = options.clients ?? 32;
  const requests = options.requests ?? 3_000;
  const sessions = await signInSessions(sql, env, clients);
  const rotating = await signInSessions(sql, env, clients);
  const server = await startServerProcess(env, { baseline: true });
  try {
    const bearer = (i: number) => ({ authorization: `Bearer ${sessions[i].access_token}` });
    const ops = {
      baseline: async (i: number) => {
        await expectOk(await fetch(server.baselineUrl!, { headers: bearer(i) }));
      },
      me: async (i: number) => {
        await expectOk(await fetch(`${server.functionsUrl}/me`, { headers: bearer(i) }));
      },
      bearerRefresh: async (i: number) => {
        const res = await fetch(`${server.functionsUrl}/refresh`, {
          method: "POST",
          headers: bearer(i),
        });
        sessions[i].access_token = (await expectOk(res)).access_token;
      },
      rotatingRefresh: async (i: number) => {
        const res = await fetch(`${server.functionsUrl}/refresh`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ refresh_token: rotating[i].refresh_token }),
        });
        rotating[i].refresh_token = (await expectOk(res)).refresh_token;
      },
    };
    // Everything warm (compiled code, the pool's connections) before anything is measured.
    for (const op of Object.values(ops)) await underLoad(clients, clients * 10, op);
    const run = (op: (client: number) => Promise<void>) =>
      underLoad(clients, requests, op, { warmup: 0 });
    const baseline = await run(ops.baseline);
    const me = await run(ops.me);
    const bearerRefresh = await run(ops.bearerRefresh);
    const rotatingRefresh = await run(ops.rotatingRefresh);

    const result = (name: string, figures: LoadFigures): BenchResult => ({
      name: `under load: ${name} (${clients} clients, ${requests} requests)`,
      rate: figures.requestsPerSecond,
      baselineRate: baseline.requestsPerSecond,
      target: null,
      unit: "requests/s",
      baseline: "server doing only a JWT verify and `select 1` on the same pool, same load",
      reference: {
        what: "requests/s ÷ the baseline's",
        ratio: figures.requestsPerSecond / baseline.requestsPerSecond,
      },
      checks: [{ what: "p99 ÷ p50", value: figures.p99 / figures.p50, atMost: tailTarget }],
      notes: [
        `latency p50 ${figures.p50.toFixed(1)} ms, p99 ${figures.p99.toFixed(1)} ms; ` +
        `baseline p50 ${baseline.p50.toFixed(1)} ms, p99 ${baseline.p99.toFixed(1)} ms`,
      ],
    });
    return [
      result("me", me),
      result("bearer refresh", bearerRefresh),
      result("rotating refresh", rotatingRefresh),
    ];
  } finally {
    await server.close();
  }
}

/**
 * `clients` loops sharing `requests` requests (after `warmup` per client, 10 unless told, not
 * counted): the rate over the whole run, and the latency percentiles of every request.
 */
export async function underLoad(
  clients: number,
  requests: number,
  op: (client: number) => Promise<void>,
  options: { warmup?: number } = {},
): Promise<LoadFigures> {
  const drive = async (count: number, latencies?: number[]) => {
    let issued = 0;
    await Promise.all(Array.from({ length: clients }, async (_, client) => {
      while (issued < count) {
        issued++;
        const startedAt = performance.now();
        await op(client);
        latencies?.push(performance.now() - startedAt);
      }
    }));
  };
  await drive(clients * (options.warmup ?? 10));
  const latencies: number[] = [];
  const startedAt = performance.now();
  await drive(requests, latencies);
  const seconds = (performance.now() - startedAt) / 1000;
  return {
    requestsPerSecond: requests / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

/** `count` new people, each signed in once (as otp-verify would), with their tokens. */
export async function signInSessions(
  sql: Sql,
  env: Record<string, string>,
  count: number,
): Promise<SignedInSession[]> {
  const config = loadConfig(env);
  if (!config.core.ok) throw new Error(config.core.message);
  const tokens = createSessionTokens(config.core.value);
  const sessions: SignedInSession[] = [];
  for (let i = 0; i < count; i++) {
    const now = new Date();
    const signedIn = await signIn(sql, {
      provider: "stytch",
      providerUserId: `bench-${crypto.randomUUID()}`,
      email: `bench.${crypto.randomUUID().slice(0, 8)}@example.test`,
      emailVerified: true,
      displayName: "Bench",
    }, { signupMode: "open", now });
    if (!signedIn.ok) throw new Error(`sign-in failed: ${signedIn.error}`);
    const answer = await tokenResponse(tokens, signedIn, now);
    sessions.push({ access_token: answer.access_token, refresh_token: answer.refresh_token! });
  }
  return sessions;
}

/** The JSON of a 200, or an error naming the status and code. */
// deno-lint-ignore no-explicit-any
async function expectOk(res: Response): Promise<any> {
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${res.url} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}
