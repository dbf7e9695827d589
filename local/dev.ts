/**
 * `npm run dev`: every function on http://127.0.0.1:${PORT:-54321}/functions/v1/<name>, like
 * `supabase functions serve`, with whatever is missing from the environment filled in locally:
 *
 * - no SUPABASE_DB_URL → an embedded Postgres (PGlite, in memory) with the migrations applied;
 *   with one, pending migrations are applied to it;
 * - no JWT_SECRET → a development secret, printed;
 * - no STYTCH_PROJECT_ID → the local Stytch emulator, which prints each code it "sends";
 * - no WORKOS_API_KEY → the local WorkOS emulator, whose sign-in page takes any email.
 *
 * It prints the URLs and an anon key (HS256 JWT `{role: "anon", iss: "supabase"}`) to call the
 * functions that have verify_jwt = true. Local tooling only, never deployed.
 */
import postgres from "postgres";
import type { Env } from "../supabase/functions/_shared/config.ts";
import { maskEmail } from "../supabase/functions/_shared/log.ts";
import { startStytchEmulator } from "./emulators/stytch.ts";
import { startWorkosEmulator } from "./emulators/workos.ts";
import { migrate } from "./migrate.ts";
import { embeddedPoolSize, startEmbeddedPostgres } from "./pglite.ts";
import { mintAnonKey, startLocalServer } from "./server.ts";

const env: Env = Deno.env.toObject();
const port = Number(env.PORT ?? 54321);
const baseUrl = `http://127.0.0.1:${port}`;
const closers: (() => Promise<void>)[] = [];
const notes: string[] = [];

function randomSecret(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(24)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

env.SUPABASE_URL ??= baseUrl;
env.SITE_URL ??= baseUrl;

if (!env.JWT_SECRET) {
  env.JWT_SECRET = randomSecret();
  notes.push(`JWT_SECRET is not set; using a development secret: ${env.JWT_SECRET}`);
}

let poolSize = 10;
if (!env.SUPABASE_DB_URL) {
  const embedded = await startEmbeddedPostgres();
  closers.push(embedded.close);
  env.SUPABASE_DB_URL = embedded.url;
  poolSize = embeddedPoolSize;
  notes.push(`SUPABASE_DB_URL is not set; using an embedded PGlite (in memory) at ${embedded.url}`);
}
{
  const sql = postgres(env.SUPABASE_DB_URL, { prepare: false, max: 1, onnotice: () => {} });
  const result = await migrate(sql);
  await sql.end();
  notes.push(
    result.applied.length
      ? `applied migrations ${result.applied.join(", ")}`
      : "database is up to date",
  );
}

if (!env.STYTCH_PROJECT_ID) {
  const stytch = await startStytchEmulator({
    onCode: (email, code) => console.log(`[stytch emulator] code ${code} for ${maskEmail(email)}`),
  });
  closers.push(stytch.close);
  Object.assign(env, {
    STYTCH_PROJECT_ID: stytch.projectId,
    STYTCH_SECRET: stytch.secret,
    STYTCH_API_URL: stytch.url,
  });
  notes.push(`STYTCH_PROJECT_ID is not set; using the Stytch emulator at ${stytch.url}`);
}

if (!env.WORKOS_API_KEY) {
  const workos = await startWorkosEmulator();
  closers.push(workos.close);
  Object.assign(env, {
    WORKOS_API_KEY: workos.apiKey,
    WORKOS_CLIENT_ID: workos.clientId,
    WORKOS_API_URL: workos.url,
    WORKOS_REDIRECT_URI: `${baseUrl}/functions/v1/workos-callback`,
    WORKOS_COOKIE_PASSWORD: env.WORKOS_COOKIE_PASSWORD ?? randomSecret(),
  });
  notes.push(`WORKOS_API_KEY is not set; using the WorkOS emulator at ${workos.url}`);
}

const landingPage = await Deno.readTextFile(new URL("./dev_page.html", import.meta.url));
const server = await startLocalServer({
  env,
  port,
  poolSize,
  fallback: (req) =>
    Promise.resolve(
      new URL(req.url).pathname === "/"
        ? new Response(landingPage, { headers: { "content-type": "text/html; charset=utf-8" } })
        : new Response("Not found", { status: 404 }),
    ),
});
closers.unshift(server.close);

const anonKey = await mintAnonKey(env.JWT_SECRET);

console.log([
  ...notes.map((note) => `- ${note}`),
  "",
  `Functions (${server.url}):`,
  ...server.functions.map((name) => `  ${server.functionsUrl}/${name}`),
  "",
  `anon key: ${anonKey}`,
  "",
  "Try it:",
  `  curl -X POST ${server.functionsUrl}/otp-send -H "authorization: Bearer <anon key>" \\`,
  `       -H "content-type: application/json" -d '{"email":"you@example.com"}'`,
  `  open ${server.url}/ and sign in with the WorkOS emulator`,
].join("\n"));

async function shutdown() {
  for (const close of closers) await close().catch(() => {});
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);
