import assert from "node:assert/strict";
import { startLocalServer } from "../local/server.ts";
import { dbTest, testSql } from "./support/db.ts";
import { testEnv } from "./support/deps.ts";

dbTest("the local server answers me with 401 JSON without a token", async () => {
  const server = await startLocalServer({ env: testEnv(), sql: testSql() });
  try {
    const res = await fetch(`${server.functionsUrl}/me`);
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, "UNAUTHORIZED");
  } finally {
    await server.close();
  }
});
