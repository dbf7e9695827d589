import assert from "node:assert/strict";
import { createHandler } from "../supabase/functions/me/handler.ts";
import { dbTest } from "./support/db.ts";
import { testDeps } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

dbTest("me answers the signed-in person and their workspaces", async () => {
  const deps = testDeps();
  const tokens = await signInForTest(deps);
  const res = await call(createHandler(deps), "me", { token: tokens.access_token });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.person, tokens.person);
  assert.deepEqual(res.body.workspaces, []);
  assert.ok(res.headers.get("x-request-id"));
});
