import assert from "node:assert/strict";
import { encodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import { decodeJwt } from "jose";
import { createRefreshTokens } from "../supabase/functions/_shared/refresh_tokens.ts";
import { createHandler as createLogoutHandler } from "../supabase/functions/logout/handler.ts";
import { createHandler as createMeHandler } from "../supabase/functions/me/handler.ts";
import { createHandler as createRefreshHandler } from "../supabase/functions/refresh/handler.ts";
import { dbTest, testSql } from "./support/db.ts";
import { testDeps } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

async function setup() {
  const deps = testDeps();
  const session = await signInForTest(deps);
  return {
    deps,
    session,
    sessionId: decodeJwt(session.access_token).session_id as string,
    refresh: createRefreshHandler(deps),
    me: createMeHandler(deps),
    logout: createLogoutHandler(deps),
  };
}

async function sessionRow(id: string) {
  const [row] = await testSql()`
    select refresh_counter::int, revoked_at, revoked_reason from identity.session where id = ${id}`;
  return row;
}

dbTest(
  "refresh rotates the refresh token and answers a token response with the person",
  async () => {
    const { session, sessionId, refresh } = await setup();
    const res = await call(refresh, "refresh", { body: { refresh_token: session.refresh_token } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(res.body.token_type, "bearer");
    assert.equal(res.body.expires_in, 3600);
    assert.ok(res.body.refresh_token && res.body.refresh_token !== session.refresh_token);
    assert.ok(res.body.refresh_token.length >= 22); // ≥ 128 bits, base64url
    assert.deepEqual(res.body.person, session.person);
    assert.equal(decodeJwt(res.body.access_token).session_id, sessionId);
    assert.equal((await sessionRow(sessionId)).refresh_counter, 1);

    const next = await call(refresh, "refresh", {
      body: { refresh_token: res.body.refresh_token },
    });
    assert.equal(next.status, 200);
    assert.equal((await sessionRow(sessionId)).refresh_counter, 2);
  },
);

dbTest("refresh answers a token reused within 10 s with the same successor", async () => {
  const { deps, session, sessionId, refresh } = await setup();
  const first = await call(refresh, "refresh", { body: { refresh_token: session.refresh_token } });
  deps.clock.advanceSeconds(9);
  const again = await call(refresh, "refresh", { body: { refresh_token: session.refresh_token } });
  assert.equal(again.status, 200);
  assert.equal(again.body.refresh_token, first.body.refresh_token);
  assert.equal((await sessionRow(sessionId)).refresh_counter, 1);
  // The successor still works: the session was not harmed.
  const next = await call(refresh, "refresh", {
    body: { refresh_token: first.body.refresh_token },
  });
  assert.equal(next.status, 200);
});

dbTest(
  "refresh rejects a token reused after the grace period and revokes the session",
  async () => {
    const { deps, session, sessionId, refresh, me } = await setup();
    const first = await call(refresh, "refresh", {
      body: { refresh_token: session.refresh_token },
    });
    deps.clock.advanceSeconds(11);
    const reused = await call(refresh, "refresh", {
      body: { refresh_token: session.refresh_token },
    });
    assert.equal(reused.status, 401);
    assert.equal(reused.body.code, "REFRESH_TOKEN_REUSED");
    assert.equal((await sessionRow(sessionId)).revoked_reason, "refresh_token_reused");
    // Every token of the session is dead: the successor and the access tokens.
    const successor = await call(refresh, "refresh", {
      body: { refresh_token: first.body.refresh_token },
    });
    assert.equal(successor.status, 401);
    assert.equal(successor.body.code, "SESSION_REVOKED");
    const meRes = await call(me, "me", { token: first.body.access_token });
    assert.equal(meRes.status, 401);
    assert.equal(meRes.body.code, "SESSION_REVOKED");
  },
);

dbTest(
  "20 concurrent refreshes of one token leave one live session with one successor",
  async () => {
    const { session, sessionId, refresh } = await setup();
    const results = await Promise.all(Array.from(
      { length: 20 },
      () => call(refresh, "refresh", { body: { refresh_token: session.refresh_token } }),
    ));
    assert.deepEqual(results.map((r) => r.status), Array(20).fill(200));
    assert.equal(new Set(results.map((r) => r.body.refresh_token)).size, 1);
    const row = await sessionRow(sessionId);
    assert.equal(row.refresh_counter, 1);
    assert.equal(row.revoked_at, null);
    const [{ n }] = await testSql()`
    select count(*)::int as n from identity.session where person_id = ${session.person.id}`;
    assert.equal(n, 1);
  },
);

dbTest("refresh rejects unknown, forged and foreign refresh tokens", async () => {
  const { session, refresh } = await setup();
  const bytes = Uint8Array.from(
    atob(
      session.refresh_token.replaceAll("-", "+").replaceAll("_", "/"),
    ),
    (c) => c.charCodeAt(0),
  );
  bytes[bytes.length - 1] ^= 1;
  const forged = encodeBase64Url(bytes);
  const foreign = await createRefreshTokens(["another-secret-with-at-least-32-chars!"]).issue({
    sessionId: decodeJwt(session.access_token).session_id as string,
    counter: 0,
  });
  for (const token of ["nonsense", forged, foreign, "A".repeat(75)]) {
    const res = await call(refresh, "refresh", { body: { refresh_token: token } });
    assert.equal(res.status, 401);
    assert.equal(res.body.code, "INVALID_REFRESH_TOKEN");
  }
});

dbTest("refresh of an expired session is SESSION_REVOKED", async () => {
  const { deps, session, refresh } = await setup();
  deps.clock.advanceSeconds(31 * 24 * 3600);
  const res = await call(refresh, "refresh", { body: { refresh_token: session.refresh_token } });
  assert.equal(res.status, 401);
  assert.equal(res.body.code, "SESSION_REVOKED");
});

dbTest("bearer-only refresh answers a fresh access token for the same live session", async () => {
  const { deps, session, sessionId, refresh } = await setup();
  deps.clock.advanceSeconds(600);
  const res = await call(refresh, "refresh", { method: "POST", token: session.access_token });
  assert.equal(res.status, 200);
  assert.equal(res.body.refresh_token, undefined);
  const claims = decodeJwt(res.body.access_token);
  assert.equal(claims.session_id, sessionId);
  assert.equal(claims.sub, session.person.id);
  assert.equal(claims.iat, Math.floor(deps.now().getTime() / 1000));
  assert.deepEqual(res.body.person, session.person);
  // The refresh token was not rotated.
  assert.equal((await sessionRow(sessionId)).refresh_counter, 0);
});

dbTest("logout makes refresh, bearer-only refresh and me answer 401", async () => {
  const { session, sessionId, refresh, me, logout } = await setup();
  const res = await call(logout, "logout", { method: "POST", token: session.access_token });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { logout_url: null });
  assert.equal((await sessionRow(sessionId)).revoked_reason, "logout");

  const refreshed = await call(refresh, "refresh", {
    body: { refresh_token: session.refresh_token },
  });
  assert.equal(refreshed.status, 401);
  assert.equal(refreshed.body.code, "SESSION_REVOKED");
  const bearerOnly = await call(refresh, "refresh", {
    method: "POST",
    token: session.access_token,
  });
  assert.equal(bearerOnly.status, 401);
  assert.equal(bearerOnly.body.code, "SESSION_REVOKED");
  const meRes = await call(me, "me", { token: session.access_token });
  assert.equal(meRes.status, 401);
  assert.equal(meRes.body.code, "SESSION_REVOKED");
  const again = await call(logout, "logout", { method: "POST", token: session.access_token });
  assert.equal(again.status, 401);
});

dbTest(
  "refresh refuses bad input with the SPEC's status and code, and writes nothing",
  async () => {
    const { session, sessionId, refresh } = await setup();
    const cases: [string, Parameters<typeof call>[2], number, string][] = [
      [
        "malformed JSON",
        { body: "{not json", headers: { "content-type": "application/json" } },
        400,
        "VALIDATION_FAILED",
      ],
      ["wrong type", { body: { refresh_token: 42 } }, 400, "VALIDATION_FAILED"],
      ["missing field", { body: { token: session.refresh_token } }, 400, "VALIDATION_FAILED"],
      ["an array", { body: [session.refresh_token] }, 400, "VALIDATION_FAILED"],
      ["70 KiB body", { body: { refresh_token: "x".repeat(70 * 1024) } }, 413, "PAYLOAD_TOO_LARGE"],
      [
        "form body",
        {
          body: "refresh_token=x",
          headers: { "content-type": "application/x-www-form-urlencoded" },
        },
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      ],
      ["no body and no authorization", { method: "POST" }, 400, "VALIDATION_FAILED"],
      ["garbage bearer, no body", { method: "POST", token: "garbage" }, 401, "UNAUTHORIZED"],
      ["wrong method", { method: "GET" }, 405, "METHOD_NOT_ALLOWED"],
    ];
    for (const [label, options, status, code] of cases) {
      const res = await call(refresh, "refresh", options);
      assert.equal(res.status, status, label);
      assert.equal(res.body.code, code, label);
      assert.equal(typeof res.body.message, "string", label);
    }
    const missing = await call(refresh, "refresh", { body: {} });
    assert.match(missing.body.message, /refresh_token/);
    assert.equal((await call(refresh, "refresh", { method: "GET" })).headers.get("allow"), "POST");
    const row = await sessionRow(sessionId);
    assert.equal(row.refresh_counter, 0);
    assert.equal(row.revoked_at, null);
  },
);

dbTest("a refresh body streamed without a length is cut off at 64 KiB", async () => {
  const { refresh } = await setup();
  const chunk = new TextEncoder().encode("x".repeat(16 * 1024));
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < 100) controller.enqueue(chunk);
      else controller.close();
    },
  });
  const res = await refresh(
    new Request("http://127.0.0.1/functions/v1/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    }),
  );
  assert.equal(res.status, 413);
  assert.ok(sent < 10, `read ${sent} chunks of 16 KiB`);
});

dbTest("me and logout refuse missing, garbage and wrong-scheme Authorization", async () => {
  const { session, sessionId, me, logout } = await setup();
  for (const [handler, method] of [[me, "GET"], [logout, "POST"]] as const) {
    for (
      const authorization of [
        undefined,
        "Bearer",
        "Bearer garbage",
        `Basic ${session.access_token}`,
      ]
    ) {
      const headers: Record<string, string> = authorization ? { authorization } : {};
      const res = await call(handler, "fn", { method, headers });
      assert.equal(res.status, 401, `${method} ${authorization}`);
      assert.equal(res.body.code, "UNAUTHORIZED");
    }
  }
  const wrongMethod = await call(me, "me", { method: "POST", token: session.access_token });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "GET");
  const logoutGet = await call(logout, "logout", { method: "GET", token: session.access_token });
  assert.equal(logoutGet.status, 405);
  assert.equal((await sessionRow(sessionId)).revoked_at, null);
});

dbTest(
  "browser-facing functions answer CORS preflight with Supabase's allowed headers",
  async () => {
    const { me } = await setup();
    const res = await me(new Request("http://127.0.0.1/functions/v1/me", { method: "OPTIONS" }));
    assert.equal(res.status, 204);
    assert.equal(
      res.headers.get("access-control-allow-headers"),
      "authorization, x-client-info, apikey, content-type",
    );
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.ok(res.headers.get("x-request-id"));

    // The answer itself carries the origin rule and lets browser code read the request id.
    const answer = await me(new Request("http://127.0.0.1/functions/v1/me"));
    assert.equal(answer.status, 401);
    assert.equal(answer.headers.get("access-control-allow-origin"), "*");
    assert.equal(answer.headers.get("access-control-expose-headers"), "x-request-id");
  },
);
