import assert from "node:assert/strict";
import { type BenchResult, median, percentile, report, verdicts } from "../bench/harness.ts";
import { underLoad } from "../bench/load.ts";
import { cpuCheck, postgresShare } from "../bench/me.ts";
import { startServerProcess } from "../bench/server_process.ts";
import { dbTest, testDatabaseKind, testDatabaseUrl } from "./support/db.ts";

Deno.test("bench percentiles: nearest rank, whatever the order of the values", () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.equal(median([5, 1, 4, 2, 3]), 3);
  assert.throws(() => percentile([], 50));
});

const rate = (name: string, ratio: number, target: number | null): BenchResult => ({
  name,
  rate: ratio * 100,
  baselineRate: 100,
  target,
  unit: "ops/s",
  baseline: "the baseline",
});

Deno.test("bench report: each target gets its verdict, and the total counts them all", () => {
  const text = report([
    rate("fast enough", 0.9, 0.8),
    rate("too slow", 0.5, 0.8),
    rate("printed only", 0.3, null),
    {
      ...rate("with checks", 0.6, null),
      checks: [
        { what: "p99 ÷ p50", value: 5, atMost: 4 },
        { what: "CPU ratio", value: 1.2, atMost: 1.3 },
      ],
      notes: ["latency p50 1 ms"],
    },
  ], "Heading");
  const lines = text.split("\n");
  const after = (name: string) => lines[lines.findIndex((l) => l.startsWith(`${name}:`)) + 1];
  assert.equal(after("fast enough"), "  ratio 0.90 (target ≥ 0.8) meets target");
  assert.equal(after("too slow"), "  ratio 0.50 (target ≥ 0.8) BELOW TARGET");
  assert.equal(after("printed only"), "  ratio 0.30 (no target)");
  assert.equal(after("with checks"), "  p99 ÷ p50 5.00 (target ≤ 4) BELOW TARGET");
  assert.ok(lines.includes("  CPU ratio 1.20 (target ≤ 1.3) meets target"));
  assert.ok(lines.includes("  latency p50 1 ms"));
  assert.equal(lines.at(-1), "2 of 4 targets met; 2 BELOW TARGET");
  // A result with checks and no rate target has only its checks as verdicts.
  assert.equal(verdicts(rate("printed only", 0.3, null)).length, 0);
});

Deno.test("bench load: exactly the requests asked for after the warm-up, never more clients at once", async () => {
  let inFlight = 0, most = 0, calls = 0;
  const figures = await underLoad(4, 50, async () => {
    calls++;
    most = Math.max(most, ++inFlight);
    await new Promise((resolve) => setTimeout(resolve, 1));
    inFlight--;
  }, { warmup: 2 });
  assert.equal(calls, 4 * 2 + 50);
  assert.equal(most, 4);
  assert.ok(figures.p50 > 0 && figures.p99 >= figures.p50);
  assert.ok(figures.requestsPerSecond > 0);
});

Deno.test("bench me: the CPU verdict compares this process's CPU only; the Postgres share is printed", () => {
  const check = cpuCheck({
    subject: { process: 260, database: 120 },
    baseline: { process: 200, database: 40 },
  });
  assert.equal(check.value, 1.3);
  assert.equal(check.atMost, 1.3);
  assert.equal(
    postgresShare({ process: 300, database: 100 }, "me"),
    "Postgres share (me): 100 of 400 µs (25 %)",
  );
  assert.match(postgresShare({ process: 300, database: null }, "me"), /not observable/);
});

dbTest(
  "bench server process: serves the functions in a child, reports its memory, exits on close",
  async () => {
    const server = await startServerProcess({
      SUPABASE_URL: "http://127.0.0.1:54321",
      SUPABASE_DB_URL: testDatabaseUrl,
      JWT_SECRET: "bench-test-jwt-secret-with-at-least-32-characters",
      LOG_LEVEL: "silent",
    }, { baseline: true, exposeGc: true });
    try {
      const res = await fetch(`${server.functionsUrl}/me`);
      assert.equal(res.status, 401);
      assert.equal((await res.json()).code, "UNAUTHORIZED");
      const baseline = await fetch(server.baselineUrl!);
      await baseline.body?.cancel();
      assert.equal(baseline.status, 401);
      const rss = await server.rss();
      assert.ok(rss > 10 * 1024 * 1024, `rss ${rss}`);
      const heap = await server.retainedHeap();
      assert.ok(heap > 0 && heap < rss, `heap ${heap}`);
    } finally {
      await server.close();
    }
  },
  // PGlite serves one connection at a time: the child would wait behind the test pool.
  { ignore: testDatabaseKind === "pglite" },
);
