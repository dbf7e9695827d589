/**
 * Applies supabase/migrations/ to a Postgres database, the way `supabase db push` does, so a
 * database migrated here is seen as up to date by the Supabase CLI and the other way round.
 *
 * On a plain Postgres (no `auth` schema) it first applies local/supabase_compat.sql, which creates
 * what Supabase provides (roles, auth.users, auth.uid() …). Idempotent: applied versions are
 * recorded in supabase_migrations.schema_migrations and skipped; concurrent runs serialize on an
 * advisory lock.
 *
 * Usage: SUPABASE_DB_URL=postgres://… deno task db:migrate
 */
import postgres from "postgres";

const migrationsDir = new URL("../supabase/migrations/", import.meta.url);
const compatScript = new URL("./supabase_compat.sql", import.meta.url);
const migrationLockKey = 7_304_116_651; // any constant; shared by every run of this tool

export interface MigrationResult {
  compatApplied: boolean;
  applied: string[];
}

/** Applies pending migrations over `sql` and returns the versions applied. */
export async function migrate(sql: postgres.Sql): Promise<MigrationResult> {
  const files = await migrationFiles();
  for (let attempt = 1;; attempt++) {
    try {
      return await migrateOnce(sql, files);
    } catch (error) {
      // Roles are shared by every database of a server: another run creating them at the same
      // moment makes this one fail; the next attempt finds them made.
      const concurrent = /concurrently|already exists/.test(String(error));
      if (!concurrent || attempt === 3) throw error;
    }
  }
}

async function migrateOnce(sql: postgres.Sql, files: MigrationFile[]): Promise<MigrationResult> {
  return await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${migrationLockKey})`;
    let compatApplied = false;
    const [{ has_auth }] = await tx`
      select exists (select 1 from pg_namespace where nspname = 'auth') as has_auth`;
    if (!has_auth) {
      await tx.unsafe(await Deno.readTextFile(compatScript));
      compatApplied = true;
    }
    // The history table exactly as the Supabase CLI creates it.
    await tx.unsafe(`
      create schema if not exists supabase_migrations;
      create table if not exists supabase_migrations.schema_migrations (version text not null primary key);
      alter table supabase_migrations.schema_migrations add column if not exists statements text[];
      alter table supabase_migrations.schema_migrations add column if not exists name text;`);
    const done = new Set(
      (await tx`select version from supabase_migrations.schema_migrations`).map((r) => r.version),
    );
    const applied: string[] = [];
    for (const file of files.filter((f) => !done.has(f.version))) {
      const text = await Deno.readTextFile(new URL(file.fileName, migrationsDir));
      await tx.unsafe(text);
      await tx`
        insert into supabase_migrations.schema_migrations (version, name, statements)
        values (${file.version}, ${file.name}, ${[text]})`;
      applied.push(file.version);
    }
    return { compatApplied, applied };
  });
}

interface MigrationFile {
  fileName: string;
  version: string;
  name: string;
}

/** `<version>_<name>.sql`, sorted by version, as the Supabase CLI names and orders them. */
async function migrationFiles(): Promise<MigrationFile[]> {
  const files: MigrationFile[] = [];
  for await (const entry of Deno.readDir(migrationsDir)) {
    const match = /^(\d+)_(.+)\.sql$/.exec(entry.name);
    if (entry.isFile && match) {
      files.push({ fileName: entry.name, version: match[1], name: match[2] });
    }
  }
  return files.sort((a, b) => a.version.localeCompare(b.version));
}

if (import.meta.main) {
  const url = Deno.env.get("SUPABASE_DB_URL") ?? Deno.env.get("DATABASE_URL");
  if (!url) {
    console.error("Set SUPABASE_DB_URL (or DATABASE_URL) to the database to migrate");
    Deno.exit(1);
  }
  const sql = postgres(url, { prepare: false, max: 1, onnotice: () => {} });
  try {
    const result = await migrate(sql);
    if (result.compatApplied) console.log("applied local/supabase_compat.sql (plain Postgres)");
    console.log(
      result.applied.length ? `applied ${result.applied.join(", ")}` : "database is up to date",
    );
  } finally {
    await sql.end();
  }
}
