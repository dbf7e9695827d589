/**
 * `me` through the local server against a baseline server, in the same process, that does only
 * what `me` cannot avoid: verify the JWT and make one database round trip (`select 1`) on the same
 * pool. The ratio is what the rest of `me` (routing, its SQL function, JSON) costs. The target is
 * on CPU: this process's CPU per request (server, client and postgres.js) at most 1.3 × the
 * baseline's; the Postgres backends' share is printed beside it (cpu.ts).
 */
import { startLocalServer } from "../local/server.ts";
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import type { Sql } from "../supabase/functions/_shared/db.ts";
import { createSessionTokens } from "../supabase/functions/_shared/tokens.ts";
import type { CpuMeter, CpuTime } from "./cpu.ts";
import { type BenchResult, type Check, compareRates, fetchOk } from "./harness.ts";
import { signInSessions } from "./load.ts";

/** `me` may cost this process at most this many times the baseline's CPU per request. */
export const cpuTarget = 1.3;

export async function benchMe(
  options: { sql: Sql; env: Record<string, string>; cpu?: CpuMeter },
): Promise<BenchResult> {
  const { sql, env } = options;
  const config = loadConfig(env);
  if (!config.core.ok) throw new Error(config.core.message);
  const tokens = createSessionTokens(config.core.value);

  // A person with a workspace, signed in.
  const [{ access_token }] = await signInSessions(sql, env, 1);
  const headers = { authorization: `Bearer ${access_token}` };

  const baseline = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const token = req.headers.get("authorization")?.slice(7) ?? "";
      if (!(await tokens.access.verify(token, new Date())).ok) {
        return new Response(null, {
          status: 401,
        });
      }
      await sql`select 1`;
      return Response.json({ ok: true });
    },
  );
  const server = await startLocalServer({ env, sql });
  try {
    const baselineUrl = `http://127.0.0.1:${baseline.addr.port}/`;
    const { rate, baselineRate, cpu } = await compareRates(
      () => fetchOk(`${server.functionsUrl}/me`, { headers }),
      () => fetchOk(baselineUrl, { headers }),
      { concurrency: 8, cpu: options.cpu },
    );
    return {
      name: "me",
      rate,
      baselineRate,
      cpu,
      // The promise is about CPU, not rate: on two cores shared with Postgres the rate is mostly
      // the database's; this process's CPU per request is what `me`'s code costs.
      target: null,
      reference: { what: "requests/s ÷ the baseline's", ratio: rate / baselineRate },
      checks: cpu ? [cpuCheck(cpu)] : [],
      notes: cpu ? [postgresShare(cpu.subject, "me"), postgresShare(cpu.baseline, "baseline")] : [],
      unit: "requests/s",
      baseline: "server doing only a JWT verify and `select 1` on the same pool",
    };
  } finally {
    await server.close();
    await baseline.shutdown();
  }
}

/** This process's CPU per `me` request against the baseline's. */
export function cpuCheck(cpu: { subject: CpuTime; baseline: CpuTime }): Check {
  return {
    what: "CPU per request, this process ÷ the baseline's",
    value: cpu.subject.process / cpu.baseline.process,
    atMost: cpuTarget,
  };
}

/** Postgres's share of the CPU a request costs, as a sentence. */
export function postgresShare(cpu: CpuTime, who: string): string {
  if (cpu.database === null) return `Postgres share (${who}): not observable here`;
  const total = cpu.process + cpu.database;
  return `Postgres share (${who}): ${cpu.database.toFixed(0)} of ${total.toFixed(0)} µs ` +
    `(${(100 * cpu.database / total).toFixed(0)} %)`;
}
