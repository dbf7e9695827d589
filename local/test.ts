/**
 * `npm test` / `deno task test [files…]`: runs the suite against a fresh database and drops it after.
 *
 * The database server is SUPABASE_DB_URL or DATABASE_URL when set, else 127.0.0.1:5432 when it
 * answers, else an embedded PGlite started here. A new database is created on that server,
 * migrated, handed to the tests as TEST_DATABASE_URL, and dropped when they finish. Ends with one
 * plain line `N passed, N failed`.
 */
import postgres from "postgres";
import { migrate } from "./migrate.ts";
import { embeddedPoolSize, startEmbeddedPostgres } from "./pglite.ts";

const defaultServerUrl = "postgres://postgres@127.0.0.1:5432/postgres";

async function answers(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

interface TestDatabase {
  url: string;
  kind: "postgres" | "pglite";
  drop(): Promise<void>;
}

async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = Deno.env.get("SUPABASE_DB_URL") ?? Deno.env.get("DATABASE_URL") ??
    defaultServerUrl;
  if (await answers(serverUrl)) {
    const name = `platform_auth_test_${Date.now()}_${crypto.randomUUID().slice(0, 8)}`;
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      kind: "postgres",
      async drop() {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
        await admin.end();
      },
    };
  }
  console.log(`No Postgres answers at ${new URL(serverUrl).host}; using embedded PGlite`);
  const embedded = await startEmbeddedPostgres();
  return { url: embedded.url, kind: "pglite", drop: () => embedded.close() };
}

const database = await createTestDatabase();
let code = 1;
try {
  const sql = postgres(database.url, { prepare: false, max: 1, onnotice: () => {} });
  await migrate(sql);
  await sql.end();

  const files = Deno.args.length ? Deno.args : ["tests/"];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", ...files],
    env: {
      TEST_DATABASE_URL: database.url,
      TEST_DATABASE_KIND: database.kind,
      TEST_DATABASE_POOL_MAX: database.kind === "pglite" ? String(embeddedPoolSize) : "10",
      LOG_LEVEL: Deno.env.get("LOG_LEVEL") ?? "silent",
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();

  let output = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    const text = decoder.decode(chunk, { stream: true });
    output += text;
    await Deno.stdout.write(chunk);
  }
  code = (await child.status).code;
  const summary = /(\d+) passed.*?\| (\d+) failed/.exec(output.slice(-2000));
  const passed = summary ? Number(summary[1]) : 0;
  const failed = summary ? Number(summary[2]) : 1;
  console.log(`${passed} passed, ${failed} failed`);
  if (!summary) code ||= 1;
} finally {
  await database.drop();
}
Deno.exit(code);
