/**
 * `npm run dev`: every function on http://127.0.0.1:${PORT:-54321}/functions/v1/<name>, like
 * `supabase functions serve`, and the local console at `/`, with whatever is missing from the
 * environment filled in locally:
 *
 * - no SUPABASE_DB_URL → an embedded Postgres (PGlite) kept in `.pglite/` (git-ignored), so the
 *   dev database survives a restart (`npm run dev -- --fresh` starts a new one); psql can look in
 *   at the printed URL while the server runs. With a URL, pending migrations are applied to it;
 * - neither JWT_SIGNING_KEYS nor JWT_SECRET → a generated ES256 signing key (tokens on the current
 *   key system) and a legacy secret for the anon key; with only JWT_SECRET, tokens stay HS256;
 * - no publishable/secret keys → generated ones;
 * - no STYTCH_PROJECT_ID → the local Stytch emulator (codes printed, and shown on the console);
 * - no WORKOS_API_KEY → the local WorkOS emulator, whose sign-in page takes any email;
 * - no RESEND_API_KEY → the local Resend emulator; email-dispatch runs every few seconds either
 *   way, and `GET /_dev/mail` lists what the emulator "sent" (dev_email.ts).
 *
 * It prints the URLs, the keys, and which functions answer 503 and why. A malformed setting or a
 * port in use stops it with one line naming it. Local tooling only, never deployed.
 */
import postgres from "postgres";
import { type ApiKeys, parseApiKeys } from "../supabase/functions/_shared/api_keys.ts";
import { type Config, type Env, loadConfig } from "../supabase/functions/_shared/config.ts";
import { maskEmail } from "../supabase/functions/_shared/log.ts";
import { consoleRoutes, devCodes } from "./console.ts";
import { setUpDevEmail } from "./dev_email.ts";
import { startStytchEmulator } from "./emulators/stytch.ts";
import { startWorkosEmulator } from "./emulators/workos.ts";
import { migrate } from "./migrate.ts";
import { embeddedPoolSize, startEmbeddedPostgres } from "./pglite.ts";
import { mintAnonKey, startLocalServer } from "./server.ts";

const env: Env = Deno.env.toObject();
const port = Number(env.PORT ?? 54321);
const baseUrl = `http://127.0.0.1:${port}`;
const pgliteDir = new URL("../.pglite/", import.meta.url);
const openApiFile = new URL("../docs/openapi.json", import.meta.url);
const closers: (() => Promise<void>)[] = [];
const notes: string[] = [];

/** Stops with one line: what is wrong and which variable to change. */
async function refuse(message: string): Promise<never> {
  console.error(`Cannot start: ${message}`);
  for (const close of closers) await close().catch(() => {});
  Deno.exit(1);
}

env.SUPABASE_URL ??= baseUrl;
env.SITE_URL ??= baseUrl;

try {
  Deno.listen({ hostname: "127.0.0.1", port }).close();
} catch (error) {
  if (!(error instanceof Deno.errors.AddrInUse)) throw error;
  await refuse(`PORT ${port} is in use; set PORT to a free port`);
}

// The current key system unless the environment chose one.
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
{
  // A malformed core setting would make every function answer 503: refuse to start instead.
  const { core } = loadConfig(env);
  if (!core.ok && core.malformed) await refuse(core.message);
}

let poolSize = 10;
if (!env.SUPABASE_DB_URL) {
  if (Deno.args.includes("--fresh")) {
    await Deno.remove(pgliteDir, { recursive: true }).catch(() => {});
  }
  const embedded = await startEmbeddedPostgres({ dataDir: pgliteDir.pathname });
  closers.push(embedded.close);
  env.SUPABASE_DB_URL = embedded.url;
  poolSize = embeddedPoolSize;
  notes.push(
    `SUPABASE_DB_URL is not set; using an embedded PGlite kept in .pglite/ (--fresh for a new ` +
      `one); psql ${embedded.url}?sslmode=disable`,
  );
}
try {
  const sql = postgres(env.SUPABASE_DB_URL, {
    prepare: false,
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
  });
  const result = await migrate(sql);
  await sql.end();
  notes.push(
    result.applied.length
      ? `applied migrations ${result.applied.join(", ")}`
      : "database is up to date",
  );
} catch (error) {
  await refuse(`SUPABASE_DB_URL cannot be migrated: ${(error as Error).message}`);
}

// The emulated codes, for the console to show (and printed, for curl users).
const codes = env.STYTCH_PROJECT_ID ? null : devCodes();
if (!env.STYTCH_PROJECT_ID) {
  const stytch = await startStytchEmulator({
    onCode: (email, code) => {
      codes?.record(email, code);
      console.log(`[stytch emulator] code ${code} for ${maskEmail(email)}`);
    },
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

const devEmail = await setUpDevEmail(env);
closers.push(devEmail.close);
if (devEmail.note) notes.push(devEmail.note);

const config = loadConfig(env);
const { publishable, secret } = apiKeysOf(env);
const consolePage = await consoleRoutes({
  functionsUrl: `${baseUrl}/functions/v1`,
  publishableKey: publishable[0] ?? "",
  codes: codes?.list,
});
const server = await startLocalServer({
  env,
  port,
  poolSize,
  deps: { log: devEmail.logger(config.logLevel) },
  fallback: async (req) =>
    await consolePage(req) ?? devEmail.route(req) ?? openApi(req) ??
      new Response("Not found", { status: 404 }),
}).catch(async (error) => {
  if (!(error instanceof Deno.errors.AddrInUse)) throw error;
  return await refuse(`PORT ${port} is in use; set PORT to a free port`);
});
closers.unshift(server.close);

devEmail.startDispatchLoop(server.functionsUrl, secret[0]);
const anonKey = env.JWT_SECRET ? await mintAnonKey(env.JWT_SECRET) : null;
const unavailable = notConfigured(config);

console.log([
  ...notes.map((note) => `- ${note}`),
  "",
  `Console: ${server.url}/   API document: ${server.url}/openapi.json`,
  `Functions (${server.functionsUrl}/<name>): ${server.functions.join(", ")}`,
  ...unavailable.map((line) => `  ${line}`),
  "",
  `publishable key: ${publishable[0] ?? "(none)"}`,
  `secret key: ${secret[0] ?? "(none)"}`,
  ...(anonKey ? [`anon key: ${anonKey}  (legacy, accepted while JWT_SECRET is set)`] : []),
  "",
  "Try it:",
  `  curl -X POST ${server.functionsUrl}/otp-send -H "apikey: <publishable key>" \\`,
  `       -H "content-type: application/json" -d '{"email":"you@example.com"}'`,
  `  curl ${server.url}/_dev/mail   (the emails the Resend emulator received)`,
].join("\n"));

/** One line per function that answers 503 until its variables are set, saying why. */
function notConfigured({ whatsapp, signupWebhook, email }: Config): string[] {
  const features = [
    ["whatsapp-webhook", whatsapp],
    ["signup-webhook", signupWebhook],
    ["email-dispatch", email],
  ] as const;
  return features.flatMap(([name, feature]) =>
    feature.ok ? [] : [`${name} answers 503 until configured: ${feature.message}`]
  );
}

/** docs/openapi.json, the API document of the browser- and app-facing functions. */
function openApi(req: Request): Response | null {
  if (new URL(req.url).pathname !== "/openapi.json") return null;
  return new Response(Deno.readFileSync(openApiFile), {
    headers: { "content-type": "application/json", "access-control-allow-origin": "*" },
  });
}

async function shutdown() {
  for (const close of closers) await close().catch(() => {});
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);

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
  ).join("");
}
