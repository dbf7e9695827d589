import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { parse as parseToml } from "smol-toml";
import { startStytchEmulator } from "../local/emulators/stytch.ts";
import { mintAnonKey, startLocalServer } from "../local/server.ts";
import { dbTest, testSql } from "./support/db.ts";
import { testEnv, testJwtSecret } from "./support/deps.ts";
import { signInForTest } from "./support/sessions.ts";
import { stytchEnv } from "./support/stytch.ts";
import { testDeps } from "./support/deps.ts";

/** A JWT of the project (any role), as the Edge gateway sees them. */
function projectJwt(claims: Record<string, unknown>, secret = testJwtSecret): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(secret));
}

async function withServer(fn: (functionsUrl: string) => Promise<void>): Promise<void> {
  const server = await startLocalServer({ env: testEnv(), sql: testSql() });
  try {
    await fn(server.functionsUrl);
  } finally {
    await server.close();
  }
}

dbTest("the local server serves every function folder and 404s the rest", async () => {
  const folders: string[] = [];
  for await (const entry of Deno.readDir(new URL("../supabase/functions/", import.meta.url))) {
    if (entry.isDirectory && !entry.name.startsWith("_")) folders.push(entry.name);
  }
  const server = await startLocalServer({ env: testEnv(), sql: testSql() });
  try {
    assert.deepEqual(server.functions, folders.sort());
    const res = await fetch(`${server.functionsUrl}/no-such-function`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).code, "NOT_FOUND");
  } finally {
    await server.close();
  }
});

dbTest(
  "functions with verify_jwt = true need a valid project JWT, the anon key included",
  async () => {
    await withServer(async (url) => {
      const missing = await fetch(`${url}/me`);
      assert.equal(missing.status, 401);
      assert.deepEqual(await missing.json(), {
        code: "UNAUTHORIZED",
        message: "Missing authorization header",
      });

      const foreign = await projectJwt({ role: "anon" }, "another-secret-of-at-least-32-chars!");
      const refused = await fetch(`${url}/me`, { headers: { authorization: `Bearer ${foreign}` } });
      assert.equal(refused.status, 401);
      assert.equal((await refused.json()).message, "Invalid JWT");

      // The anon key passes the gateway; `me` itself then wants a platform access token.
      const anonKey = await mintAnonKey(testJwtSecret);
      const passed = await fetch(`${url}/me`, { headers: { authorization: `Bearer ${anonKey}` } });
      assert.equal(passed.status, 401);
      assert.equal((await passed.json()).message, "Access token is invalid");

      const session = await signInForTest(testDeps());
      const me = await fetch(`${url}/me`, {
        headers: { authorization: `Bearer ${session.access_token}` },
      });
      assert.equal(me.status, 200);
      assert.equal((await me.json()).person.id, session.person.id);
    });
  },
);

dbTest("functions with verify_jwt = false are reached without a JWT", async () => {
  await withServer(async (url) => {
    const res = await fetch(`${url}/refresh`, { method: "POST" });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, "VALIDATION_FAILED");
  });
});

Deno.test("supabase/config.toml sets verify_jwt for every function as SPEC §4 says", async () => {
  const config = parseToml(
    await Deno.readTextFile(new URL("../supabase/config.toml", import.meta.url)),
  ) as { functions: Record<string, { verify_jwt: boolean }> };
  const verifyJwt = Object.fromEntries(
    Object.entries(config.functions).map(([name, settings]) => [name, settings.verify_jwt]),
  );
  assert.deepEqual(verifyJwt, {
    "workos-login": false,
    "workos-callback": false,
    "otp-send": true,
    "otp-verify": true,
    refresh: false,
    logout: true,
    me: true,
    "signup-webhook": false,
    "whatsapp-webhook": false,
  });
});

dbTest(
  "the local server gives functions the client's address when no x-forwarded-for is set",
  async () => {
    const stytch = await startStytchEmulator();
    const env = testEnv(stytchEnv(stytch));
    const server = await startLocalServer({ env, sql: testSql() });
    const sends = async () => {
      const [row] = await testSql()`
      select coalesce(array_length(sent_at, 1), 0) as n from identity.otp_send_limit
      where scope = 'ip' and key_hash = identity.otp_limit_key('127.0.0.1')`;
      return row?.n ?? 0;
    };
    try {
      const before = await sends();
      const res = await fetch(`${server.functionsUrl}/otp-send`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await mintAnonKey(testJwtSecret)}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ email: `xff.${crypto.randomUUID().slice(0, 8)}@example.test` }),
      });
      assert.equal(res.status, 200, await res.text());
      assert.equal(await sends(), before + 1);
    } finally {
      await server.close();
      await stytch.close();
    }
  },
);
