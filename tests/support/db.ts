/**
 * The test database: a fresh, migrated database per run, created by local/test.ts and passed as
 * TEST_DATABASE_URL. One pool for the whole run.
 */
import type { Sql } from "../../supabase/functions/_shared/db.ts";
import { connectDatabase } from "../../supabase/functions/_shared/pool.ts";

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

class Rollback extends Error {}

/**
 * Runs `fn` in a transaction as `role`, with `claims` set as PostgREST sets them for a request
 * when given, then rolls the transaction back.
 */
export async function asRole<T>(
  role: string,
  fn: (tx: Sql) => Promise<T>,
  claims?: Record<string, unknown>,
): Promise<T> {
  let result: T;
  await testSql().begin(async (tx) => {
    if (claims) await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
    await tx.unsafe(`set local role ${role}`);
    result = await fn(tx as unknown as Sql);
    throw new Rollback();
  }).catch((error) => {
    if (!(error instanceof Rollback)) throw error;
  });
  return result!;
}

/** Whether `statement` fails for lack of privilege or policy, inside a savepoint. */
export async function refused(tx: Sql, statement: string): Promise<boolean> {
  try {
    await (tx as unknown as { savepoint: (fn: (sp: Sql) => Promise<unknown>) => Promise<unknown> })
      .savepoint((sp) => sp.unsafe(statement));
    return false;
  } catch (error) {
    const code = (error as { code?: string }).code;
    // 42501 insufficient_privilege; RLS WITH CHECK violations share it.
    if (code === "42501") return true;
    throw error;
  }
}

/** A unique email for one test, so tests never see each other's rows. */
export function uniqueEmail(label = "person"): string {
  return `${label}.${crypto.randomUUID().slice(0, 12)}@example.test`;
}
