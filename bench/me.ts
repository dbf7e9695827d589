/**
 * `me` through the local server against a baseline server, in the same process, that does only
 * what `me` cannot avoid: verify the JWT and make one database round trip (`select 1`) on the same
 * pool. The ratio is what the rest of `me` (routing, its SQL function, JSON) costs.
 */
import { startLocalServer } from "../local/server.ts";
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import type { Sql } from "../supabase/functions/_shared/db.ts";
import { signIn } from "../supabase/functions/_shared/session_store.ts";
import { createSessionTokens, tokenResponse } from "../supabase/functions/_shared/tokens.ts";
import type { CpuMeter } from "./cpu.ts";
import { type BenchResult, compareRates, fetchOk } from "./harness.ts";

export async function benchMe(
  options: { sql: Sql; env: Record<string, string>; cpu?: CpuMeter },
): Promise<BenchResult> {
  const { sql, env } = options;
  const config = loadConfig(env);
  if (!config.core.ok) throw new Error(config.core.message);
  const tokens = createSessionTokens(config.core.value);

  // A person with a workspace, signed in.
  const signedIn = await signIn(sql, {
    provider: "stytch",
    providerUserId: `bench-${crypto.randomUUID()}`,
    email: `bench.${crypto.randomUUID().slice(0, 8)}@example.test`,
    emailVerified: true,
    displayName: "Bench",
  }, { signupMode: "open", now: new Date() });
  if (!signedIn.ok) throw new Error(signedIn.error);
  const { access_token } = await tokenResponse(tokens, signedIn, new Date());
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
      target: 0.8,
      unit: "requests/s",
      baseline: "server doing only a JWT verify and `select 1` on the same pool",
    };
  } finally {
    await server.close();
    await baseline.shutdown();
  }
}
