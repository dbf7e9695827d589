/**
 * `npm test` / `deno task test [files…]`: runs the suite against a fresh database and drops it after.
 *
 * The database server is SUPABASE_DB_URL or DATABASE_URL when set, else 127.0.0.1:5432 when it
 * answers, else an embedded PGlite started here. A new database is created on that server,
 * migrated, handed to the tests as TEST_DATABASE_URL, and dropped when they finish. Ends with one
 * plain line `N passed, N failed`.
 */
import { createScratchDatabase } from "./scratch_database.ts";

const database = await createScratchDatabase("platform_auth_test");
let code = 1;
try {
  const files = Deno.args.length ? Deno.args : ["tests/"];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", ...files],
    env: {
      DENO_NO_PACKAGE_JSON: "1",
      TEST_DATABASE_URL: database.url,
      TEST_DATABASE_KIND: database.kind,
      TEST_DATABASE_POOL_MAX: String(database.poolSize),
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
