import assert from "node:assert/strict";
import { migrate } from "../local/migrate.ts";
import { dbTest, testDatabaseKind, testDatabaseUrl, testSql } from "./support/db.ts";

async function migrationFiles(): Promise<string[]> {
  const versions: string[] = [];
  for await (const entry of Deno.readDir(new URL("../supabase/migrations/", import.meta.url))) {
    const match = /^(\d+)_.+\.sql$/.exec(entry.name);
    if (match) versions.push(match[1]);
  }
  return versions.sort();
}

dbTest("every migration is recorded in supabase_migrations.schema_migrations", async () => {
  const rows = await testSql()`
    select version, name, array_length(statements, 1) as statements
    from supabase_migrations.schema_migrations order by version`;
  assert.deepEqual(rows.map((r) => r.version), await migrationFiles());
  assert.ok(rows.every((r) => r.name && r.statements >= 1));
});

dbTest("migrating again applies nothing", async () => {
  assert.deepEqual(await migrate(testSql()), { compatApplied: false, applied: [] });
});

dbTest(
  "the Supabase CLI sees the migrated database as up to date",
  async () => {
    const url = new URL(testDatabaseUrl);
    url.searchParams.set("sslmode", "disable");
    const output = await new Deno.Command("node_modules/.bin/supabase", {
      args: ["db", "push", "--dry-run", "--db-url", url.toString()],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, text);
    assert.match(text, /Remote database is up to date/);
  },
  { ignore: testDatabaseKind !== "postgres" }, // the CLI needs a real server, not PGlite
);

Deno.test("supabase/config.toml is a valid Supabase CLI config", async () => {
  // `supabase status` reads the config first; without Docker it then fails to reach the stack.
  const output = await new Deno.Command("node_modules/.bin/supabase", {
    args: ["status"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.doesNotMatch(text, /failed to read config|failed to parse|Invalid/i);
});
