/**
 * The whole WorkOS sign-in over HTTP, as a browser and an app drive it, through the local server
 * (verify_jwt from config.toml) and the real SDK against the WorkOS emulator: login → AuthKit →
 * callback → tokens → me → refresh → logout (platform and WorkOS sessions both revoked). Then the
 * WorkOS part of logout on its own.
 */
import { freePort } from "../local/free_port.ts";
import assert from "node:assert/strict";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { signIn } from "../supabase/functions/_shared/session_store.ts";
import { createSessionTokens, tokenResponse } from "../supabase/functions/_shared/tokens.ts";
import { createHandler as createLogoutHandler } from "../supabase/functions/logout/handler.ts";
import { startLocalServer } from "../local/server.ts";
import { startWorkosEmulator } from "../local/emulators/workos.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { testDeps, testEnv, testJwtSecret, testSupabaseUrl } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";
import { fragmentOf, siteUrl, withWorkos, workosEnv } from "./support/workos.ts";

/** A port nobody listens on right now, so WORKOS_REDIRECT_URI can name the server's. */

dbTest("WorkOS sign-in over HTTP: login, AuthKit, callback, me, refresh, logout", async () => {
  const emulator = await startWorkosEmulator();
  const port = freePort();
  const env = testEnv(workosEnv(emulator, {
    WORKOS_REDIRECT_URI: `http://127.0.0.1:${port}/functions/v1/workos-callback`,
  }));
  const server = await startLocalServer({ env, sql: testSql(), port });
  try {
    const email = uniqueEmail("flow");
    const functions = server.functionsUrl;

    // The app asks where to send the browser (no JWT: verify_jwt = false).
    const login = await fetch(`${functions}/workos-login?return_to=${encodeURIComponent("/dash")}`);
    assert.equal(login.status, 200);
    const { url } = await login.json();
    assert.ok(url.startsWith(`${emulator.url}/user_management/authorize?`));

    // The browser signs in at AuthKit, which sends it to the callback with code and state.
    const authkitRedirect = await emulator.signIn(url, {
      email,
      emailVerified: true,
      firstName: "Grace",
      lastName: "Hopper",
    });
    assert.ok(authkitRedirect.startsWith(`${functions}/workos-callback?`));
    const callback = await fetch(authkitRedirect, { redirect: "manual" });
    await callback.body?.cancel();
    assert.equal(callback.status, 302);
    assert.equal(callback.headers.get("cache-control"), "no-store");
    const { base, params } = fragmentOf(callback.headers.get("location"));
    assert.equal(base, `${siteUrl}/dash`);
    assert.equal(params.token_type, "bearer");

    // The access token: the platform JWT of SPEC §5, for the person the callback named.
    assert.deepEqual(decodeProtectedHeader(params.access_token), { alg: "HS256", typ: "JWT" });
    const { payload: claims } = await jwtVerify(
      params.access_token,
      new TextEncoder().encode(testJwtSecret),
      { issuer: `${testSupabaseUrl}/auth/v1`, audience: "authenticated", algorithms: ["HS256"] },
    );
    assert.equal(claims.sub, params.person_id);
    assert.equal(claims.role, "authenticated");
    assert.equal(claims.email, email);
    assert.equal(claims.is_anonymous, false);
    assert.equal(claims.aal, "aal1");
    assert.equal(claims.exp! - claims.iat!, 3600);
    assert.equal(Number(params.expires_at), claims.exp);
    const amr = claims.amr as { method: string; timestamp: number }[];
    assert.equal(amr.length, 1);
    assert.equal(amr[0].method, "sso/oauth");
    assert.ok(Math.abs(amr[0].timestamp - claims.iat!) <= 1);
    const appMetadata = claims.app_metadata as Record<string, unknown>;
    assert.equal(appMetadata.provider, "workos");
    assert.deepEqual(appMetadata.providers, ["workos"]);
    assert.deepEqual(claims.user_metadata, {});
    const [session] = await testSql()`
      select workos_session_id from identity.session
      where id = ${claims.session_id as string} and person_id = ${params.person_id}`;
    assert.match(session.workos_session_id, /^session_/);

    // me and refresh work with it (me needs a JWT: verify_jwt = true).
    const me = await fetch(`${functions}/me`, {
      headers: { authorization: `Bearer ${params.access_token}` },
    });
    assert.equal(me.status, 200);
    const meBody = await me.json();
    assert.equal(meBody.person.id, params.person_id);
    assert.equal(meBody.person.email, email);
    assert.equal(meBody.person.display_name, "Grace Hopper");

    const refresh = await fetch(`${functions}/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: params.refresh_token }),
    });
    assert.equal(refresh.status, 200);
    const refreshed = await refresh.json();
    assert.equal(refreshed.person.id, params.person_id);
    assert.notEqual(refreshed.refresh_token, params.refresh_token);

    // logout revokes both sessions and hands back WorkOS's logout URL.
    const logout = await fetch(`${functions}/logout`, {
      method: "POST",
      headers: { authorization: `Bearer ${refreshed.access_token}` },
    });
    assert.equal(logout.status, 200);
    const { logout_url } = await logout.json();
    const logoutUrl = new URL(logout_url);
    assert.equal(logoutUrl.origin, emulator.url);
    assert.equal(logoutUrl.pathname, "/user_management/sessions/logout");
    assert.equal(logoutUrl.searchParams.get("session_id"), session.workos_session_id);
    assert.equal(logoutUrl.searchParams.get("return_to"), siteUrl);
    assert.ok(emulator.revokedSessions.has(session.workos_session_id));
    assert.equal(emulator.hits.revoke, 1);
    const [revoked] = await testSql()`
      select revoked_at, revoked_reason from identity.session where id = ${claims
      .session_id as string}`;
    assert.ok(revoked.revoked_at);
    assert.equal(revoked.revoked_reason, "logout");

    // Nothing of the session works any more.
    const meAfter = await fetch(`${functions}/me`, {
      headers: { authorization: `Bearer ${refreshed.access_token}` },
    });
    assert.equal(meAfter.status, 401);
    assert.equal((await meAfter.json()).code, "SESSION_REVOKED");
    const refreshAfter = await fetch(`${functions}/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: refreshed.refresh_token }),
    });
    assert.equal(refreshAfter.status, 401);
    assert.equal((await refreshAfter.json()).code, "SESSION_REVOKED");

    // The browser opens the logout URL: AuthKit forgets it and sends it to SITE_URL.
    const signedOut = await fetch(logout_url, { redirect: "manual" });
    await signedOut.body?.cancel();
    assert.equal(signedOut.status, 302);
    assert.equal(signedOut.headers.get("location"), siteUrl);
  } finally {
    await server.close();
    await emulator.close();
  }
});

dbTest("the local server serves workos-login without a JWT and logout only with one", async () => {
  const emulator = await startWorkosEmulator();
  const server = await startLocalServer({ env: testEnv(workosEnv(emulator)), sql: testSql() });
  try {
    const login = await fetch(`${server.functionsUrl}/workos-login`);
    assert.equal(login.status, 200);
    await login.body?.cancel();
    const callback = await fetch(`${server.functionsUrl}/workos-callback?code=c&state=s`);
    assert.equal(callback.status, 400);
    assert.equal((await callback.json()).code, "INVALID_STATE");
    const logout = await fetch(`${server.functionsUrl}/logout`, { method: "POST" });
    assert.equal(logout.status, 401);
    await logout.body?.cancel();
  } finally {
    await server.close();
    await emulator.close();
  }
});

// The WorkOS part of logout, handler by handler.

dbTest("logout of a WorkOS session still succeeds when WorkOS fails to revoke it", async () => {
  await withWorkos(async ({ emulator, deps, signIn: workosSignIn }) => {
    const { params } = fragmentOf((await workosSignIn()).headers.get("location"));
    emulator.failWith = "error";
    const logout = createLogoutHandler(deps);
    const res = await call(logout, "logout", { method: "POST", token: params.access_token });
    assert.equal(res.status, 200);
    assert.ok(new URL(res.body.logout_url).searchParams.get("session_id"));
    assert.equal(emulator.hits.revoke, 1);
    assert.equal(emulator.revokedSessions.size, 0);
    const sessionId = (await jwtVerify(
      params.access_token,
      new TextEncoder().encode(testJwtSecret),
    )).payload.session_id as string;
    const [session] = await testSql()`
      select revoked_at from identity.session where id = ${sessionId}`;
    assert.ok(session.revoked_at, "the platform session is revoked regardless");
  });
});

dbTest("logout of a WorkOS session answers within the WorkOS bound when WorkOS hangs", async () => {
  await withWorkos(async ({ emulator, deps, signIn: workosSignIn }) => {
    const { params } = fragmentOf((await workosSignIn()).headers.get("location"));
    emulator.failWith = "hang";
    const logout = createLogoutHandler(deps);
    const started = Date.now();
    const res = await call(logout, "logout", { method: "POST", token: params.access_token });
    assert.ok(Date.now() - started < 2_000);
    assert.equal(res.status, 200);
    assert.ok(res.body.logout_url);
  }, { workos: { timeoutMs: 300 } });
});

dbTest("logout of a Stytch session answers logout_url null without calling WorkOS", async () => {
  await withWorkos(async ({ emulator, deps }) => {
    const tokens = await signInForTest(deps, { provider: "stytch" });
    const logout = createLogoutHandler(deps);
    const res = await call(logout, "logout", { method: "POST", token: tokens.access_token });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { logout_url: null });
    assert.equal(emulator.hits.revoke, 0);
  });
});

dbTest(
  "logout of a WorkOS session answers logout_url null when WorkOS is not configured",
  async () => {
    const deps = testDeps();
    if (!deps.config.core.ok) throw new Error("test deps need the core config");
    const result = await signIn(deps.sql!, {
      provider: "workos",
      providerUserId: `user_${crypto.randomUUID()}`,
      email: uniqueEmail(),
      emailVerified: true,
      displayName: null,
    }, { workosSessionId: "session_01NOTCONFIGURED", signupMode: "open", now: deps.now() });
    assert.ok(result.ok);
    const tokens = await tokenResponse(
      createSessionTokens(deps.config.core.value),
      result,
      deps.now(),
    );
    const res = await call(createLogoutHandler(deps), "logout", {
      method: "POST",
      token: tokens.access_token,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { logout_url: null });
  },
);

dbTest("logout answers 401 SESSION_REVOKED the second time", async () => {
  await withWorkos(async ({ emulator, deps, signIn: workosSignIn }) => {
    const { params } = fragmentOf((await workosSignIn()).headers.get("location"));
    const logout = createLogoutHandler(deps);
    assert.equal(
      (await call(logout, "logout", { method: "POST", token: params.access_token })).status,
      200,
    );
    const again = await call(logout, "logout", { method: "POST", token: params.access_token });
    assert.equal(again.status, 401);
    assert.equal(again.body.code, "SESSION_REVOKED");
    assert.equal(emulator.hits.revoke, 1);
  });
});
