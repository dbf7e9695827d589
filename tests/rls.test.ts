import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { asRole, dbTest, refused, testSql } from "./support/db.ts";
import { testDeps } from "./support/deps.ts";
import { signInForTest } from "./support/sessions.ts";

/** Two people, each with a workspace of their own. */
async function twoPeopleWithWorkspaces() {
  const deps = testDeps();
  const people = [];
  for (const name of ["ada", "bob"]) {
    const session = await signInForTest(deps);
    const [workspace] = await testSql()`
      insert into identity.workspace (name, created_by) values (${name}, ${session.person.id})
      returning id`;
    await testSql()`
      insert into identity.membership (workspace_id, person_id, role)
      values (${workspace.id}, ${session.person.id}, 'owner')`;
    people.push({
      claims: decodeJwt(session.access_token),
      id: session.person.id,
      workspaceId: workspace.id,
    });
  }
  return people;
}

dbTest(
  "a signed-in person reads exactly their own person row, memberships and workspaces",
  async () => {
    const [ada, bob] = await twoPeopleWithWorkspaces();
    const seen = await asRole("authenticated", async (tx) => ({
      uid: (await tx`select auth.uid() as uid`)[0].uid,
      people: (await tx`select id from identity.person`).map((r) => r.id),
      workspaces: (await tx`select id from identity.workspace`).map((r) => r.id),
      memberships: (await tx`select person_id from identity.membership`).map((r) => r.person_id),
    }), ada.claims);
    const adasWorkspaces = await testSql()`
      select workspace_id from identity.membership where person_id = ${ada.id}`;
    assert.equal(seen.uid, ada.id);
    assert.deepEqual(seen.people, [ada.id]);
    assert.deepEqual(seen.workspaces.sort(), adasWorkspaces.map((r) => r.workspace_id).sort());
    assert.ok(seen.workspaces.includes(ada.workspaceId));
    assert.ok(!seen.workspaces.includes(bob.workspaceId));
    assert.ok(seen.memberships.length >= 1 && seen.memberships.every((id) => id === ada.id));
  },
);

dbTest("a signed-in person cannot insert, update or delete in any table", async () => {
  const [ada, bob] = await twoPeopleWithWorkspaces();
  const tables = await testSql()`
    select schemaname || '.' || tablename as name from pg_tables
    where schemaname in ('identity', 'whatsapp') order by 1`;
  assert.ok(tables.length >= 8);
  await asRole("authenticated", async (tx) => {
    for (const { name } of tables) {
      assert.ok(await refused(tx, `insert into ${name} default values`), `insert into ${name}`);
      assert.ok(await refused(tx, `delete from ${name}`), `delete from ${name}`);
    }
    assert.ok(
      await refused(tx, `update identity.person set display_name = 'x' where id = '${ada.id}'`),
    );
    assert.ok(
      await refused(tx, `update identity.workspace set name = 'x' where id = '${bob.workspaceId}'`),
    );
    assert.ok(
      await refused(
        tx,
        `update identity.membership set role = 'admin' where person_id = '${ada.id}'`,
      ),
    );
  }, ada.claims);
});

dbTest("anon sees nothing", async () => {
  await twoPeopleWithWorkspaces();
  const tables = await testSql()`
    select schemaname || '.' || tablename as name from pg_tables
    where schemaname in ('identity', 'whatsapp') order by 1`;
  await asRole("anon", async (tx) => {
    for (const { name } of tables) {
      assert.ok(await refused(tx, `select * from ${name}`), `select from ${name}`);
    }
  }, { role: "anon", iss: "supabase" });
});

dbTest("row-level security is on for every table", async () => {
  const unprotected = await testSql()`
    select n.nspname || '.' || c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r' and n.nspname in ('identity', 'whatsapp') and not c.relrowsecurity`;
  assert.deepEqual(unprotected.map((r) => r.name), []);
});
