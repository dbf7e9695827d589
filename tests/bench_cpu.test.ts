import assert from "node:assert/strict";
import { cpuMeter, cpuUsed } from "../bench/cpu.ts";
import { dbTest, testDatabaseKind, testSql } from "./support/db.ts";

dbTest(
  "bench CPU meter: counts the CPU of the pool's Postgres backends and of this process",
  async () => {
    const sql = testSql();
    const meter = cpuMeter(sql, "postgres");
    const connection = await sql.reserve();
    try {
      await connection`select 1`; // its backend exists before the first reading
      const before = await meter();
      await connection`select count(*) from generate_series(1, 3000000)`;
      const used = cpuUsed(before, await meter());
      assert.ok(used.database !== null && used.database >= 30_000, `database: ${used.database}`);
      assert.ok(used.process > 0);
    } finally {
      connection.release();
    }
  },
  { ignore: testDatabaseKind === "pglite" },
);

dbTest(
  "bench CPU meter: no database figure on PGlite, which runs inside this process",
  async () => {
    const reading = await cpuMeter(testSql(), "pglite")();
    assert.equal(reading.backends, null);
    assert.equal(cpuUsed(reading, reading).database, null);
  },
);

Deno.test("bench CPU meter: only backends present in both readings count", () => {
  const used = cpuUsed(
    { process: 1_000, backends: new Map([[1, 500], [2, 700]]) },
    { process: 1_600, backends: new Map([[1, 900], [3, 50_000]]) },
  );
  assert.deepEqual(used, { process: 600, database: 400 });
});
