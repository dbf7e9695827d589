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
import { type ApiKeys, parseApiKeys } from "../supabase/functions/_shared/api_keys.ts";
import { type Env, loadConfig } from "../supabase/functions/_shared/config.ts";
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

/** A private ES256 JWK shaped as `supabase gen signing-key --algorithm ES256` prints it. */
async function generateSigningKey(): Promise<JsonWebKey & { kid: string }> {
  const { privateKey } = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  return { ...jwk, kid: crypto.randomUUID(), alg: "ES256", use: "sig" };
}

function apiKeysOf(env: Env): ApiKeys {
  const parsed = parseApiKeys(env);
  return parsed.ok ? parsed.keys : { publishable: [], secret: [] };
}

function randomSecret(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(24)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

env.SUPABASE_URL ??= baseUrl;
env.SITE_URL ??= baseUrl;

// The current key system unless the environment chose one: an ES256 signing key signs tokens, a
// legacy secret stays for the anon key (with only JWT_SECRET set, tokens stay HS256).
if (!env.JWT_SIGNING_KEYS && !env.JWT_SECRET) {
  env.JWT_SIGNING_KEYS = JSON.stringify(await generateSigningKey());
  env.JWT_SECRET = randomSecret();
  notes.push("JWT_SIGNING_KEYS is not set; tokens are signed with a generated ES256 key");
}
if (!env.SUPABASE_PUBLISHABLE_KEYS && !env.SUPABASE_PUBLISHABLE_KEY) {
  env.SUPABASE_PUBLISHABLE_KEYS = JSON.stringify({ default: `sb_publishable_${randomSecret()}` });
  env.SUPABASE_SECRET_KEYS ??= JSON.stringify({ default: `sb_secret_${randomSecret()}` });
  notes.push("SUPABASE_PUBLISHABLE_KEYS is not set; using generated publishable and secret keys");
}
// A port in use is said in one line, before anything starts.
try {
  Deno.listen({ hostname: "127.0.0.1", port }).close();
} catch (error) {
  if (!(error instanceof Deno.errors.AddrInUse)) throw error;
  console.error(`Cannot start: PORT ${port} is in use; set PORT to a free port`);
  Deno.exit(1);
}

{
  // A malformed core setting would make every function answer 503: refuse to start instead.
  const { core } = loadConfig(env);
  if (!core.ok && core.malformed) {
    console.error(`Cannot start: ${core.message}`);
    Deno.exit(1);
  }
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
}).catch(async (error) => {
  if (!(error instanceof Deno.errors.AddrInUse)) throw error;
  console.error(`Cannot start: PORT ${port} is in use; set PORT to a free port`);
  for (const close of closers) await close().catch(() => {});
  Deno.exit(1);
});
closers.unshift(server.close);

const { publishable, secret } = apiKeysOf(env);
const anonKey = env.JWT_SECRET ? await mintAnonKey(env.JWT_SECRET) : null;

console.log([
  ...notes.map((note) => `- ${note}`),
  "",
  `Functions (${server.url}):`,
  ...server.functions.map((name) => `  ${server.functionsUrl}/${name}`),
  "",
  `publishable key: ${publishable[0] ?? "(none)"}`,
  `secret key: ${secret[0] ?? "(none)"}`,
  ...(anonKey ? [`anon key: ${anonKey}  (legacy, accepted while JWT_SECRET is set)`] : []),
  "",
  "Try it:",
  `  curl -X POST ${server.functionsUrl}/otp-send -H "apikey: <publishable key>" \\`,
  `       -H "content-type: application/json" -d '{"email":"you@example.com"}'`,
  `  open ${server.url}/ and sign in with the WorkOS emulator`,
].join("\n"));

async function shutdown() {
  for (const close of closers) await close().catch(() => {});
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);
