/**
 * Signing keys and API keys (SPEC §9): tokens signed with real keys from `supabase gen
 * signing-key`, published by jwks and accepted by the functions; rotation; every refused header;
 * the legacy secret beside the new keys and without them; each auth mode against each credential.
 */
import { jsonSegment as b64 } from "./support/segments.ts";
import { encodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import assert from "node:assert/strict";
import {
  CompactSign,
  compactVerify,
  createLocalJWKSet,
  decodeProtectedHeader,
  importJWK,
} from "jose";
import { startStytchEmulator } from "../local/emulators/stytch.ts";
import { mintAnonKey } from "../local/server.ts";
import type { Deps } from "../supabase/functions/_shared/deps.ts";
import { json } from "../supabase/functions/_shared/http.ts";
import { defineHandler } from "../supabase/functions/_shared/pipeline.ts";
import { createHandler as createJwksHandler } from "../supabase/functions/jwks/handler.ts";
import { createHandler as createLogoutHandler } from "../supabase/functions/logout/handler.ts";
import { createHandler as createMeHandler } from "../supabase/functions/me/handler.ts";
import { createHandler as createOtpSendHandler } from "../supabase/functions/otp-send/handler.ts";
import { createHandler as createRefreshHandler } from "../supabase/functions/refresh/handler.ts";
import { asRole, dbTest } from "./support/db.ts";
import { testDeps, testJwtSecret } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { testPublishableKey, testSecretKey } from "./support/keys.ts";
import { signInForTest } from "./support/sessions.ts";
import { stytchEnv } from "./support/stytch.ts";

/** A private JWK exactly as the Supabase CLI prints it. */
async function cliSigningKey(algorithm: "ES256" | "RS256"): Promise<Record<string, unknown>> {
  const output = await new Deno.Command("node_modules/.bin/supabase", {
    args: ["gen", "signing-key", "--algorithm", algorithm],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return JSON.parse(new TextDecoder().decode(output.stdout).split("\n")[0]);
}

const es256 = await cliSigningKey("ES256");
const rs256 = await cliSigningKey("RS256");
const unlisted = await cliSigningKey("ES256");
const sessionSecret = "session-secret-of-this-deployment-0123456789";

function keyDeps(keys: Record<string, unknown>[], env: Record<string, string | undefined> = {}) {
  return testDeps({ env: { JWT_SIGNING_KEYS: JSON.stringify(keys), ...env } });
}

/** A token with `header` over the claims of `token`, signed by `key` (a private JWK). */
async function resign(
  token: string,
  header: Record<string, unknown>,
  key: Record<string, unknown>,
): Promise<string> {
  const payload = token.split(".")[1];
  const bytes = Uint8Array.from(
    atob(payload.replaceAll("-", "+").replaceAll("_", "/")),
    (c) => c.charCodeAt(0),
  );
  const { key_ops: _ops, ext: _ext, ...jwk } = key;
  return await new CompactSign(bytes).setProtectedHeader(header as { alg: string })
    .sign(await importJWK(jwk, header.alg as string));
}

for (const [label, key] of [["ES256", es256], ["RS256", rs256]] as const) {
  dbTest(
    `an ${label} key from supabase gen signing-key signs tokens that jwks verifies and me accepts`,
    async () => {
      const deps = keyDeps([key], { JWT_SECRET: undefined, SESSION_SECRET: sessionSecret });
      const session = await signInForTest(deps);
      assert.deepEqual(decodeProtectedHeader(session.access_token), {
        alg: label,
        kid: key.kid,
        typ: "JWT",
      });

      const jwks = await call(createJwksHandler(deps), "jwks");
      assert.equal(jwks.status, 200);
      assert.match(jwks.headers.get("cache-control") ?? "", /^public, max-age=\d+$/);
      assert.equal(jwks.headers.get("access-control-allow-origin"), "*");
      for (const published of jwks.body.keys) {
        for (const member of ["d", "p", "q", "dp", "dq", "qi", "k", "key_ops"]) {
          assert.ok(!(member in published), `jwks publishes ${member}`);
        }
        assert.equal(published.use, "sig");
      }
      const verified = await compactVerify(session.access_token, createLocalJWKSet(jwks.body));
      assert.equal(JSON.parse(new TextDecoder().decode(verified.payload)).sub, session.person.id);

      const me = await call(createMeHandler(deps), "me", { token: session.access_token });
      assert.equal(me.status, 200, JSON.stringify(me.body));
      assert.equal(me.body.person.id, session.person.id);

      // PostgREST verifies the same token with the imported key and sets its claims: auth.uid().
      const claims = JSON.parse(new TextDecoder().decode(verified.payload));
      const uid = await asRole("authenticated", async (tx) => {
        const [row] =
          await tx`select auth.uid() as uid, (select count(*)::int from identity.person) as n`;
        return row;
      }, claims);
      assert.deepEqual(uid, { uid: session.person.id, n: 1 });
    },
  );
}

dbTest(
  "rotation: the first key signs, a token of the second still works, others are 401",
  async () => {
    const before = keyDeps([es256]);
    const old = await signInForTest(before);
    const after = keyDeps([rs256, es256]);
    const fresh = await signInForTest(after);
    assert.equal(decodeProtectedHeader(fresh.access_token).kid, rs256.kid);
    const me = createMeHandler(after);
    assert.equal((await call(me, "me", { token: old.access_token })).status, 200);
    assert.equal((await call(me, "me", { token: fresh.access_token })).status, 200);

    const forged: [string, string][] = [
      [
        "a key not listed, its own kid",
        await resign(old.access_token, { alg: "ES256", kid: unlisted.kid, typ: "JWT" }, unlisted),
      ],
      [
        "a key not listed, a listed kid",
        await resign(old.access_token, { alg: "ES256", kid: es256.kid, typ: "JWT" }, unlisted),
      ],
      [
        "an unknown kid",
        old.access_token.replace(/^[^.]+/, b64({ alg: "ES256", kid: "nope", typ: "JWT" })),
      ],
      ["alg none", `${b64({ alg: "none", typ: "JWT" })}.${old.access_token.split(".")[1]}.`],
      [
        "HS256 signed with the public key's bytes",
        await hs256WithPublicKey(old.access_token, es256),
      ],
      [
        "RS256 named on an ES256 kid",
        old.access_token.replace(/^[^.]+/, b64({ alg: "RS256", kid: es256.kid, typ: "JWT" })),
      ],
    ];
    for (const [label, token] of forged) {
      const res = await call(me, "me", { token });
      assert.equal(res.status, 401, label);
      assert.equal(res.body.code, "UNAUTHORIZED", label);
    }
  },
);

dbTest("a token naming jku, x5u, jwk or x5c is 401 and nothing is fetched", async () => {
  let fetched = 0;
  const listener = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    fetched++;
    return Response.json({ keys: [] });
  });
  try {
    const deps = keyDeps([es256]);
    const session = await signInForTest(deps);
    const url = `http://127.0.0.1:${listener.addr.port}/jwks.json`;
    const { d: _d, key_ops: _k, ext: _e, ...publicJwk } = es256;
    const headers = [
      { jku: url },
      { x5u: url },
      { jwk: publicJwk },
      { x5c: ["MIIB"] },
    ];
    for (const extra of headers) {
      const token = await resign(
        session.access_token,
        { alg: "ES256", kid: es256.kid, typ: "JWT", ...extra },
        es256,
      );
      const res = await call(createMeHandler(deps), "me", { token });
      assert.equal(res.status, 401, Object.keys(extra)[0]);
    }
    assert.equal(fetched, 0);
  } finally {
    await listener.shutdown();
  }
});

dbTest(
  "legacy and new side by side: HS256 tokens work while JWT_SECRET is set, not after",
  async () => {
    const legacy = testDeps();
    const hs256 = await signInForTest(legacy);
    assert.deepEqual(decodeProtectedHeader(hs256.access_token), { alg: "HS256", typ: "JWT" });

    const both = keyDeps([es256]);
    assert.equal(
      (await call(createMeHandler(both), "me", { token: hs256.access_token })).status,
      200,
    );

    const revoked = keyDeps([es256], { JWT_SECRET: undefined, SESSION_SECRET: sessionSecret });
    const res = await call(createMeHandler(revoked), "me", { token: hs256.access_token });
    assert.equal(res.status, 401);
  },
);

dbTest(
  "without JWT_SECRET, a signing key and SESSION_SECRET sign in, refresh and log out",
  async () => {
    const deps = keyDeps([es256], { JWT_SECRET: undefined, SESSION_SECRET: sessionSecret });
    const session = await signInForTest(deps);
    const refreshed = await call(createRefreshHandler(deps), "refresh", {
      body: { refresh_token: session.refresh_token },
    });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal(decodeProtectedHeader(refreshed.body.access_token).kid, es256.kid);
    const renewed = await call(createRefreshHandler(deps), "refresh", {
      method: "POST",
      token: refreshed.body.access_token,
    });
    assert.equal(renewed.status, 200);
    const logout = await call(createLogoutHandler(deps), "logout", {
      method: "POST",
      token: renewed.body.access_token,
    });
    assert.deepEqual([logout.status, logout.body], [200, { logout_url: null }]);
  },
);

dbTest(
  "adding SESSION_SECRET signs nobody out: old refresh tokens work, successors move keys",
  async () => {
    const legacy = testDeps();
    const session = await signInForTest(legacy);
    const both = testDeps({ env: { SESSION_SECRET: sessionSecret } });
    const rotated = await call(createRefreshHandler(both), "refresh", {
      body: { refresh_token: session.refresh_token },
    });
    assert.equal(rotated.status, 200, "a token keyed by JWT_SECRET still refreshes");
    // The successor is keyed by SESSION_SECRET: it works once JWT_SECRET is gone.
    const sessionOnly = keyDeps([es256], { JWT_SECRET: undefined, SESSION_SECRET: sessionSecret });
    const next = await call(createRefreshHandler(sessionOnly), "refresh", {
      body: { refresh_token: rotated.body.refresh_token },
    });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    // And a token keyed by the old secret no longer opens there.
    const stale = await signInForTest(legacy);
    const refused = await call(createRefreshHandler(sessionOnly), "refresh", {
      body: { refresh_token: stale.refresh_token },
    });
    assert.deepEqual([refused.status, refused.body.code], [401, "INVALID_REFRESH_TOKEN"]);
  },
);

/** A function of `secret` mode, as a backend job would call it. */
function secretProbe(deps: Deps) {
  return defineHandler(
    deps,
    { name: "probe", methods: ["POST"], cors: true, auth: "secret", requires: ["core"] },
    () => Promise.resolve(json({ ok: true })),
  );
}

dbTest("each auth mode answers each credential as SPEC §9 says", async () => {
  const stytch = await startStytchEmulator();
  try {
    const singular = "sb_publishable_singular_0123456789abcdefghij";
    const deps = testDeps({ env: { ...stytchEnv(stytch), SUPABASE_PUBLISHABLE_KEY: singular } });
    const user = await signInForTest(deps);
    const anon = await mintAnonKey(testJwtSecret);
    const serviceRole = await mintServiceRoleKey();
    const credentials: Record<string, Record<string, string>> = {
      "publishable (named)": { apikey: testPublishableKey },
      "publishable (bearer)": { authorization: `Bearer ${testPublishableKey}` },
      "publishable (singular)": { apikey: singular },
      secret: { apikey: testSecretKey },
      "legacy anon": { authorization: `Bearer ${anon}` },
      "legacy service_role": { apikey: serviceRole },
      "user token": { authorization: `Bearer ${user.access_token}` },
      garbage: { apikey: "sb_publishable_garbage", authorization: "Bearer garbage" },
      none: {},
    };
    const passes: Record<string, string[]> = {
      publishable: [
        "publishable (named)",
        "publishable (bearer)",
        "publishable (singular)",
        "secret",
        "legacy anon",
        "legacy service_role",
      ],
      user: ["user token"],
      secret: ["secret", "legacy service_role"],
    };
    const handlers = {
      publishable: {
        handler: createOtpSendHandler(deps),
        path: "otp-send",
        code: "INVALID_API_KEY",
      },
      user: { handler: createMeHandler(deps), path: "me", code: "UNAUTHORIZED" },
      secret: { handler: secretProbe(deps), path: "probe", code: "INVALID_API_KEY" },
    };
    for (const [mode, { handler, path, code }] of Object.entries(handlers)) {
      for (const [label, headers] of Object.entries(credentials)) {
        const res = await call(handler, path, {
          method: mode === "user" ? "GET" : "POST",
          body: mode === "user" ? undefined : "{}",
          headers: { "content-type": "application/json", ...headers },
          apiKey: null,
        });
        const expected = passes[mode].includes(label);
        assert.equal(res.status !== 401, expected, `${mode} × ${label}: ${res.status}`);
        if (!expected) {
          assert.equal(res.body.code, code, `${mode} × ${label}`);
          assert.ok(res.headers.get("x-request-id"), `${mode} × ${label}`);
          assert.equal(res.headers.get("access-control-allow-origin"), "*");
        }
      }
    }
    // mode none: refresh never asks for a key.
    const none = await call(createRefreshHandler(deps), "refresh", { body: {}, apiKey: null });
    assert.equal(none.status, 400);
  } finally {
    await stytch.close();
  }
});

function mintServiceRoleKey(): Promise<string> {
  return new CompactSign(
    new TextEncoder().encode(JSON.stringify({
      role: "service_role",
      iss: "supabase",
      iat: 1_700_000_000,
      exp: 2_000_000_000,
    })),
  ).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(testJwtSecret));
}

/** The alg-confusion forgery: HS256 keyed with the public key's JSON, naming the ES256 kid. */
async function hs256WithPublicKey(token: string, key: Record<string, unknown>): Promise<string> {
  const { d: _d, key_ops: _k, ext: _e, ...publicJwk } = key;
  const payload = token.split(".")[1];
  const input = `${b64({ alg: "HS256", kid: key.kid, typ: "JWT" })}.${payload}`;
  const hmac = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(JSON.stringify(publicJwk)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", hmac, new TextEncoder().encode(input)),
  );
  return `${input}.${encodeBase64Url(mac)}`;
}
