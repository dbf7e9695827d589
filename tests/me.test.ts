import assert from "node:assert/strict";
import { createHandler } from "../supabase/functions/me/handler.ts";
import { dbTest, testSql } from "./support/db.ts";
import { testDeps } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

dbTest("me answers the signed-in person and their workspaces", async () => {
  const deps = testDeps();
  const session = await signInForTest(deps);
  const [shared] = await testSql()`
    insert into identity.workspace (name) values ('Shared') returning id`;
  await testSql()`
    insert into identity.membership (workspace_id, person_id, role)
    values (${shared.id}, ${session.person.id}, 'member')`;
  const expected = await testSql()`
    select w.id, w.name, m.role from identity.membership m
    join identity.workspace w on w.id = m.workspace_id
    where m.person_id = ${session.person.id} order by m.created_at`;

  const res = await call(createHandler(deps), "me", { token: session.access_token });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.person, session.person);
  assert.deepEqual(res.body.workspaces, expected.map((w) => ({ ...w })));
  assert.ok(res.body.workspaces.some((w: { id: string }) => w.id === shared.id));
  assert.ok(res.headers.get("x-request-id"));
});
