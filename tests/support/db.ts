/**
 * The test database: a fresh, migrated database per run, created by local/test.ts and passed as
 * TEST_DATABASE_URL. One pool for the whole run.
 */
import { connectDatabase, type Sql } from "../../supabase/functions/_shared/db.ts";

export const testDatabaseUrl = Deno.env.get("TEST_DATABASE_URL") ?? "";
export const testDatabaseKind = Deno.env.get("TEST_DATABASE_KIND") ?? "postgres";

if (!testDatabaseUrl) {
  throw new Error("TEST_DATABASE_URL is not set: run the suite with `npm test` (deno task test)");
}

let pool: Sql | undefined;

/** The shared pool on the test database (1 connection on PGlite, which serves one at a time). */
export function testSql(): Sql {
  pool ??= connectDatabase(testDatabaseUrl, {
    max: Number(Deno.env.get("TEST_DATABASE_POOL_MAX") ?? 10),
  });
  return pool;
}

/**
 * A test that uses the database. The pool outlives each test, so Deno's per-test resource and op
 * sanitizers are off here; servers a test starts must still be closed by the test.
 */
export function dbTest(
  name: string,
  fn: () => Promise<void>,
  options: { ignore?: boolean } = {},
): void {
  Deno.test({ name, fn, sanitizeResources: false, sanitizeOps: false, ...options });
}

/** A unique email for one test, so tests never see each other's rows. */
export function uniqueEmail(label = "person"): string {
  return `${label}.${crypto.randomUUID().slice(0, 12)}@example.test`;
}
