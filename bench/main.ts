/**
 * `deno task bench`: every figure as a ratio to a baseline measured in the same run, each with its
 * verdict (meets target / BELOW TARGET). Uses a fresh migrated database (see
 * local/scratch_database.ts), dropped at the end.
 *
 * The cold-start, load and leak benches start processes (the functions as deployed, the local
 * server on its own): they need --allow-run, and say so instead of running without it.
 */
import { startStytchEmulator } from "../local/emulators/stytch.ts";
import { createScratchDatabase } from "../local/scratch_database.ts";
import { connectDatabase } from "../supabase/functions/_shared/pool.ts";
import { benchColdStart, deployedFunctions } from "./cold_start.ts";
import { cpuMeter } from "./cpu.ts";
import { benchEmailDispatch } from "./email.ts";
import { type BenchResult, report } from "./harness.ts";
import { benchJwt } from "./jwt.ts";
import { benchLeak } from "./leak.ts";
import { benchLoad, signInSessions } from "./load.ts";
import { benchMe } from "./me.ts";
import { benchWhatsappDeliveries } from "./whatsapp.ts";

const publishableKey = "sb_publishable_bench_0123456789abcdefghij";
const database = await createScratchDatabase("platform_auth_bench");
const sql = connectDatabase(database.url, { max: database.poolSize });
const cpu = cpuMeter(sql, database.kind);
const env: Record<string, string> = {
  SUPABASE_URL: "http://127.0.0.1:54321",
  SUPABASE_DB_URL: database.url,
  JWT_SECRET: "bench-jwt-secret-with-at-least-32-characters",
  SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: publishableKey }),
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: "sb_secret_bench_0123456789abcdefghijklmnop" }),
  // The task sets warn: one request log line each would flood the terminal.
  LOG_LEVEL: Deno.env.get("LOG_LEVEL") ?? "warn",
};
const canSpawn = (await Deno.permissions.query({ name: "run" })).state === "granted";

const results: BenchResult[] = [];
const step = (what: string) => console.log(`· ${what}`);
try {
  if (canSpawn) {
    step("cold starts (each function, then first successes of me and otp-send)");
    results.push(...await coldStarts());
  }
  step("JWT");
  results.push(...await benchJwt());
  step("me");
  results.push(await benchMe({ sql, env, cpu }));
  step("whatsapp-webhook");
  results.push(await benchWhatsappDeliveries({ sql, env, cpu }));
  step("email-dispatch");
  results.push(await benchEmailDispatch({ sql, env, cpu }));
  if (canSpawn) {
    step("under load (me, bearer refresh, rotating refresh)");
    results.push(...await benchLoad({ sql, env }));
    step("no leak (20,000 me requests)");
    results.push(await benchLeak({ sql, env }));
  }
} finally {
  await sql.end();
  await database.drop();
}

console.log(
  report(results, `Benchmarks (${database.kind}; ratios are against a baseline in this run)`),
);
if (!canSpawn) {
  console.log(
    "NOT MEASURED: cold starts, load and leak start processes; run the bench with --allow-run",
  );
}

/** Every function's cold start, and the first successful me and otp-send after one. */
async function coldStarts(): Promise<BenchResult[]> {
  const stytch = await startStytchEmulator();
  try {
    const [{ access_token }] = await signInSessions(sql, env, 1);
    let sent = 0;
    const run = crypto.randomUUID().slice(0, 8);
    return await benchColdStart({
      env: {
        ...env,
        STYTCH_PROJECT_ID: stytch.projectId,
        STYTCH_SECRET: stytch.secret,
        STYTCH_API_URL: stytch.url,
      },
      functions: await deployedFunctions(),
      firstSuccess: {
        me: (url) => fetch(`${url}/me`, { headers: { authorization: `Bearer ${access_token}` } }),
        // A new address and client IP each time, so no send meets another's rate limit.
        "otp-send": (url) => {
          sent++;
          return fetch(`${url}/otp-send`, {
            method: "POST",
            headers: {
              apikey: publishableKey,
              "content-type": "application/json",
              "x-forwarded-for": `10.77.${sent >> 8 & 255}.${sent & 255}`,
            },
            body: JSON.stringify({ email: `cold.${run}.${sent}@example.test` }),
          });
        },
      },
    });
  } finally {
    await stytch.close();
  }
}
