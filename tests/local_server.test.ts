import assert from "node:assert/strict";
import { parse as parseToml } from "smol-toml";
import { startStytchEmulator } from "../local/emulators/stytch.ts";
import { mintAnonKey, startLocalServer } from "../local/server.ts";
import { dbTest, testSql } from "./support/db.ts";
import { testEnv, testJwtSecret } from "./support/deps.ts";
import { signInForTest } from "./support/sessions.ts";
import { stytchEnv } from "./support/stytch.ts";
import { testDeps } from "./support/deps.ts";

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

dbTest("the local server has no gateway: each function checks its caller itself", async () => {
  await withServer(async (url) => {
    const missing = await fetch(`${url}/me`);
    assert.equal(missing.status, 401);
    assert.ok(missing.headers.get("x-request-id"));
    assert.deepEqual(await missing.json(), {
      code: "UNAUTHORIZED",
      message: "Authorization: Bearer <access token> is required",
    });

    // An API key is not a user: `me` wants a platform access token.
    const anonKey = await mintAnonKey(testJwtSecret);
    const withKey = await fetch(`${url}/me`, { headers: { authorization: `Bearer ${anonKey}` } });
    assert.equal(withKey.status, 401);
    assert.equal((await withKey.json()).message, "Access token is invalid");

    const session = await signInForTest(testDeps());
    const me = await fetch(`${url}/me`, {
      headers: { authorization: `Bearer ${session.access_token}` },
    });
    assert.equal(me.status, 200);
    assert.equal((await me.json()).person.id, session.person.id);

    // otp-send wants an API key, and says so itself.
    const noKey = await fetch(`${url}/otp-send`, { method: "POST" });
    assert.equal((await noKey.json()).code, "STYTCH_NOT_CONFIGURED");
  });
});

dbTest("functions of mode none are reached without any credential", async () => {
  await withServer(async (url) => {
    const res = await fetch(`${url}/refresh`, { method: "POST" });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, "VALIDATION_FAILED");
  });
});

dbTest("an unknown function and _shared are 404 JSON with a request id", async () => {
  await withServer(async (url) => {
    for (const name of ["no-such-function", "_shared"]) {
      const res = await fetch(`${url}/${name}`);
      assert.equal(res.status, 404);
      assert.ok(res.headers.get("x-request-id"));
      assert.equal((await res.json()).code, "NOT_FOUND");
    }
  });
});

Deno.test("supabase/config.toml sets verify_jwt = false for every function folder", async () => {
  const config = parseToml(
    await Deno.readTextFile(new URL("../supabase/config.toml", import.meta.url)),
  ) as { functions: Record<string, { verify_jwt: boolean }> };
  const folders: string[] = [];
  for await (const entry of Deno.readDir(new URL("../supabase/functions/", import.meta.url))) {
    if (entry.isDirectory && !entry.name.startsWith("_")) folders.push(entry.name);
  }
  assert.deepEqual(Object.keys(config.functions).sort(), folders.sort());
  for (const [name, settings] of Object.entries(config.functions)) {
    assert.equal(settings.verify_jwt, false, name);
  }
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
