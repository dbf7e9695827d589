/**
 * `deno task bench`: every figure as a ratio to a baseline measured in the same run.
 * Uses a fresh migrated database (see local/scratch_database.ts), dropped at the end.
 */
import { createScratchDatabase } from "../local/scratch_database.ts";
import { connectDatabase } from "../supabase/functions/_shared/db.ts";
import { cpuMeter, type CpuTime } from "./cpu.ts";
import type { BenchResult } from "./harness.ts";
import { benchJwt } from "./jwt.ts";
import { benchMe } from "./me.ts";
import { benchWhatsappDeliveries } from "./whatsapp.ts";

const database = await createScratchDatabase("platform_auth_bench");
const sql = connectDatabase(database.url, { max: database.poolSize });
const cpu = cpuMeter(sql, database.kind);
const env = {
  SUPABASE_URL: "http://127.0.0.1:54321",
  SUPABASE_DB_URL: database.url,
  JWT_SECRET: "bench-jwt-secret-with-at-least-32-characters",
};

const results: BenchResult[] = [];
try {
  results.push(...await benchJwt());
  results.push(await benchMe({ sql, env, cpu }));
  results.push(await benchWhatsappDeliveries({ sql, env, cpu }));
} finally {
  await sql.end();
  await database.drop();
}

console.log(
  `\nBenchmarks (${database.kind}; ratios are measured against a baseline in this run)\n`,
);
for (const r of results) {
  const ratio = r.rate / r.baselineRate;
  console.log(
    `${r.name}: ${r.rate.toFixed(0)} ${r.unit} vs ${r.baselineRate.toFixed(0)} baseline ` +
      `(${r.baseline})\n  ratio ${ratio.toFixed(2)} (target ≥ ${r.target}) ` +
      (ratio >= r.target ? "meets target" : "BELOW TARGET"),
  );
  if (r.reference) {
    console.log(`  for reference, ${r.reference.what}: ratio ${r.reference.ratio.toFixed(2)}`);
  }
  if (r.cpu) {
    console.log(
      `  CPU per operation: ${cpuText(r.cpu.subject)}; baseline ${cpuText(r.cpu.baseline)}`,
    );
  }
}

function cpuText(cpu: CpuTime): string {
  const database = cpu.database === null ? "" : `, Postgres ${cpu.database.toFixed(0)} µs`;
  return `this process ${cpu.process.toFixed(0)} µs${database}`;
}
