/**
 * Function privileges (SPEC §13.7): no function in identity or whatsapp is executable by anon or
 * authenticated, including one added after the migrations.
 */
import assert from "node:assert/strict";
import { dbTest, testSql } from "./support/db.ts";

/** Every identity/whatsapp function that `role` may execute. */
async function executableBy(role: string, sql = testSql()): Promise<string[]> {
  const rows = await sql`
    select n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
      as name
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('identity', 'whatsapp') and has_function_privilege(${role}, p.oid, 'execute')
    order by 1`;
  return rows.map((row) => row.name as string);
}

dbTest("no identity or whatsapp function is executable by anon or authenticated", async () => {
  const [{ count }] = await testSql()`
    select count(*)::int as count from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('identity', 'whatsapp')`;
  assert.ok(count > 20, `only ${count} functions found`);
  assert.deepEqual(await executableBy("anon"), []);
  assert.deepEqual(await executableBy("authenticated"), []);
});

dbTest(
  "a function added later to identity is not executable by anon or authenticated",
  async () => {
    class Rollback extends Error {}
    let executable: string[] = [];
    await testSql().begin(async (tx) => {
      await tx.unsafe(
        `create function identity.added_later() returns int language sql as 'select 1'`,
      );
      await tx.unsafe(
        `create function whatsapp.added_later() returns int language sql as 'select 1'`,
      );
      const sql = tx as unknown as ReturnType<typeof testSql>;
      executable = [
        ...await executableBy("anon", sql),
        ...await executableBy("authenticated", sql),
      ];
      throw new Rollback();
    }).catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });
    assert.deepEqual(executable, []);
  },
);
