/**
 * The WorkOS wrapper (`_shared/workos.ts`) driven through the real `@workos-inc/node` SDK against the
 * local WorkOS emulator: what the functions rely on, and what happens when WorkOS misbehaves.
 */
import { encodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import assert from "node:assert/strict";
import {
  createWorkosAuth,
  type WorkosAuth,
  type WorkosAuthOptions,
} from "../supabase/functions/_shared/workos.ts";
import {
  startWorkosEmulator,
  type WorkosEmulator,
  type WorkosEmulatorOptions,
  type WorkosEmulatorUser,
} from "../local/emulators/workos.ts";

const redirectUri = "http://127.0.0.1:54321/functions/v1/workos-callback";
const person: WorkosEmulatorUser = {
  email: "ada@example.com",
  emailVerified: true,
  firstName: "Ada",
  lastName: "L",
};

interface Fixture {
  emulator: WorkosEmulator;
  workos: WorkosAuth;
  /** Signs `user` in through the emulated page and returns the code and its PKCE verifier. */
  signIn(user?: WorkosEmulatorUser): Promise<{ code: string; codeVerifier: string; state: string }>;
}

async function withWorkosClient(
  test: (fixture: Fixture) => void | Promise<void>,
  options: { emulator?: WorkosEmulatorOptions; auth?: WorkosAuthOptions } = {},
): Promise<void> {
  const emulator = await startWorkosEmulator(options.emulator);
  try {
    const workos = createWorkosAuth(
      {
        apiKey: emulator.apiKey,
        clientId: emulator.clientId,
        redirectUri,
        apiUrl: emulator.url,
      },
      { maxRetries: 0, ...options.auth },
    );
    await test({
      emulator,
      workos,
      async signIn(user = person) {
        const { codeVerifier, codeChallenge } = await pkcePair();
        const state = crypto.randomUUID();
        const location = new URL(
          await emulator.signIn(workos.authorizationUrl({ state, codeChallenge }), user),
        );
        assert.equal(location.searchParams.get("state"), state);
        return { code: location.searchParams.get("code")!, codeVerifier, state };
      },
    });
  } finally {
    await emulator.close();
  }
}

async function pkcePair(): Promise<{ codeVerifier: string; codeChallenge: string }> {
  const codeVerifier = encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(codeVerifier));
  return { codeVerifier, codeChallenge: encodeBase64Url(new Uint8Array(digest)) };
}

Deno.test("authorizationUrl points at the emulator with provider authkit, S256 and the state", async () => {
  await withWorkosClient(({ emulator, workos }) => {
    const url = new URL(workos.authorizationUrl({ state: "opaque-state", codeChallenge: "abc" }));
    assert.equal(url.origin, emulator.url);
    assert.equal(url.pathname, "/user_management/authorize");
    assert.deepEqual(Object.fromEntries(url.searchParams), {
      client_id: emulator.clientId,
      code_challenge: "abc",
      code_challenge_method: "S256",
      provider: "authkit",
      redirect_uri: redirectUri,
      response_type: "code",
      state: "opaque-state",
    });
  });
});

Deno.test("the emulated sign-in page is an HTML form and redirects back with code and state", async () => {
  await withWorkosClient(async ({ emulator, workos }) => {
    const url = workos.authorizationUrl({ state: "s1", codeChallenge: "abc" });
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type")!, /^text\/html/);
    assert.match(await page.text(), /<form method="post">/);

    const location = new URL(await emulator.signIn(url, person));
    assert.equal(location.origin + location.pathname, redirectUri);
    assert.equal(location.searchParams.get("state"), "s1");
    assert.ok(location.searchParams.get("code"));
    assert.equal(emulator.hits.authorize, 2);
  });
});

Deno.test("the emulated sign-in page rejects an unknown client_id with a 400 page", async () => {
  await withWorkosClient(async ({ emulator, workos }) => {
    const url = new URL(workos.authorizationUrl({ state: "s", codeChallenge: "abc" }));
    url.searchParams.set("client_id", "client_unknown");
    const page = await fetch(url);
    assert.equal(page.status, 400);
    assert.match(await page.text(), /Invalid client_id/);
    await assert.rejects(emulator.signIn(url.href, person), /answered 400/);
  });
});

Deno.test("cancelling on the emulated sign-in page redirects back with error=access_denied", async () => {
  await withWorkosClient(async ({ workos }) => {
    const url = workos.authorizationUrl({ state: "s2", codeChallenge: "abc" });
    const answer = await fetch(url, {
      method: "POST",
      body: new URLSearchParams({ decision: "deny" }),
      redirect: "manual",
    });
    await answer.body?.cancel();
    assert.equal(answer.status, 302);
    const location = new URL(answer.headers.get("location")!);
    assert.equal(location.searchParams.get("error"), "access_denied");
    assert.equal(location.searchParams.get("state"), "s2");
    assert.equal(location.searchParams.get("code"), null);
  });
});

Deno.test("exchangeCode returns the WorkOS user and the session id verified via JWKS", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    const result = await workos.exchangeCode(code, codeVerifier);
    assert.equal(result.ok, true);
    if (!result.ok) return;
    assert.match(result.user.id, /^user_[0-9A-Z]{26}$/);
    assert.deepEqual(
      { ...result.user, id: "…" },
      { id: "…", email: "ada@example.com", emailVerified: true, firstName: "Ada", lastName: "L" },
    );
    assert.match(result.sessionId, /^session_[0-9A-Z]{26}$/);
    assert.equal(emulator.hits.authenticate, 1);
    assert.equal(emulator.hits.jwks, 1);
  });
});

Deno.test("exchangeCode reports an unverified email and no names as WorkOS sends them", async () => {
  await withWorkosClient(async ({ workos, signIn }) => {
    const { code, codeVerifier } = await signIn({ email: "bob@example.com", emailVerified: false });
    const result = await workos.exchangeCode(code, codeVerifier);
    assert.equal(result.ok, true);
    if (!result.ok) return;
    assert.equal(result.user.emailVerified, false);
    assert.equal(result.user.firstName, null);
    assert.equal(result.user.lastName, null);
  });
});

Deno.test("the same email always signs in as the same WorkOS user, in a new session", async () => {
  await withWorkosClient(async ({ workos, signIn }) => {
    const first = await signIn();
    const second = await signIn({ ...person, email: "ADA@example.com" });
    const a = await workos.exchangeCode(first.code, first.codeVerifier);
    const b = await workos.exchangeCode(second.code, second.codeVerifier);
    assert.ok(a.ok && b.ok);
    assert.equal(a.user.id, b.user.id);
    assert.notEqual(a.sessionId, b.sessionId);
  });
});

Deno.test("the same email gets the same WorkOS user id after an emulator restart", async () => {
  assert.equal(await idOfAdaOnAFreshEmulator(), await idOfAdaOnAFreshEmulator());
});

async function idOfAdaOnAFreshEmulator(): Promise<string> {
  let id = "";
  await withWorkosClient(async ({ workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    const result = await workos.exchangeCode(code, codeVerifier);
    assert.ok(result.ok);
    id = result.user.id;
  });
  return id;
}

Deno.test("exchangeCode refuses a wrong code verifier as invalid_grant", async () => {
  await withWorkosClient(async ({ workos, signIn }) => {
    const { code } = await signIn();
    const { codeVerifier: otherVerifier } = await pkcePair();
    assert.deepEqual(await workos.exchangeCode(code, otherVerifier), {
      ok: false,
      reason: "invalid_grant",
    });
  });
});

Deno.test("exchangeCode refuses a code used twice as invalid_grant", async () => {
  await withWorkosClient(async ({ workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    assert.equal((await workos.exchangeCode(code, codeVerifier)).ok, true);
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "invalid_grant",
    });
  });
});

Deno.test("exchangeCode refuses an unknown or empty code as invalid_grant", async () => {
  await withWorkosClient(async ({ emulator, workos }) => {
    const { codeVerifier } = await pkcePair();
    assert.deepEqual(await workos.exchangeCode("not-a-code", codeVerifier), {
      ok: false,
      reason: "invalid_grant",
    });
    assert.deepEqual(await workos.exchangeCode("", codeVerifier), {
      ok: false,
      reason: "invalid_grant",
    });
    assert.equal(emulator.hits.authenticate, 1);
  });
});

Deno.test("exchangeCode refuses a code older than 10 minutes as invalid_grant", async () => {
  let clock = Date.now();
  await withWorkosClient(async ({ workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    clock += 10 * 60 * 1000 + 1;
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "invalid_grant",
    });
  }, { emulator: { now: () => clock } });
});

Deno.test("exchangeCode fetches WorkOS's JWKS once for several exchanges", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    for (let i = 0; i < 3; i++) {
      const { code, codeVerifier } = await signIn();
      assert.equal((await workos.exchangeCode(code, codeVerifier)).ok, true);
    }
    assert.equal(emulator.hits.authenticate, 3);
    assert.equal(emulator.hits.jwks, 1);
  });
});

Deno.test("exchangeCode checks the access token issuer when one is configured", async () => {
  await withWorkosClient(async ({ emulator, signIn }) => {
    const config = {
      apiKey: emulator.apiKey,
      clientId: emulator.clientId,
      redirectUri,
      apiUrl: emulator.url,
    };
    const matching = createWorkosAuth(config, { maxRetries: 0, issuer: emulator.issuer });
    const first = await signIn();
    assert.equal((await matching.exchangeCode(first.code, first.codeVerifier)).ok, true);

    const other = createWorkosAuth(config, { maxRetries: 0, issuer: "https://api.workos.com" });
    const second = await signIn();
    assert.deepEqual(await other.exchangeCode(second.code, second.codeVerifier), {
      ok: false,
      reason: "provider_error",
    });
  });
});

Deno.test("exchangeCode reports provider_error when the API key is wrong", async () => {
  await withWorkosClient(async ({ emulator, signIn }) => {
    const workos = createWorkosAuth({
      apiKey: "sk_test_wrong",
      clientId: emulator.clientId,
      redirectUri,
      apiUrl: emulator.url,
    }, { maxRetries: 0 });
    const { code, codeVerifier } = await signIn();
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "provider_error",
    });
  });
});

Deno.test("exchangeCode reports provider_error when WorkOS answers 500", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    emulator.failWith = "error";
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "provider_error",
    });
    assert.equal(emulator.hits.authenticate, 1);
  });
});

Deno.test("exchangeCode retries a 500 when retries are allowed, within the deadline", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    emulator.failWith = "error";
    const started = Date.now();
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "provider_error",
    });
    assert.ok(Date.now() - started < 5_000);
    assert.equal(emulator.hits.authenticate, 2);
  }, { auth: { maxRetries: 1, timeoutMs: 5_000 } });
});

Deno.test("exchangeCode reports provider_error quickly when WorkOS is stopped", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    await emulator.close();
    const started = Date.now();
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "provider_error",
    });
    assert.ok(Date.now() - started < 1_000);
  });
});

Deno.test("exchangeCode reports provider_error within timeoutMs when WorkOS hangs", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    emulator.failWith = "hang";
    const started = Date.now();
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "provider_error",
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1_000, `took ${elapsed} ms`);
  }, { auth: { timeoutMs: 300 } });
});

Deno.test("exchangeCode reports provider_error when WorkOS's JWKS answers 500", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    emulator.failWith = "error";
    emulator.failEndpoints = ["jwks"];
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "provider_error",
    });
    assert.equal(emulator.hits.authenticate, 1);
    assert.equal(emulator.hits.jwks, 1);
  });
});

Deno.test("exchangeCode reports provider_error within timeoutMs when WorkOS's JWKS hangs", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    emulator.failWith = "hang";
    emulator.failEndpoints = ["jwks"];
    const started = Date.now();
    assert.deepEqual(await workos.exchangeCode(code, codeVerifier), {
      ok: false,
      reason: "provider_error",
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1_000, `took ${elapsed} ms`);
  }, { auth: { timeoutMs: 300 } });
});

Deno.test("revokeSession ends the WorkOS session", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    const result = await workos.exchangeCode(code, codeVerifier);
    assert.ok(result.ok);
    assert.equal(await workos.revokeSession(result.sessionId), true);
    assert.ok(emulator.revokedSessions.has(result.sessionId));
    assert.equal(emulator.hits.revoke, 1);
  });
});

Deno.test("revokeSession returns false for a session WorkOS does not know", async () => {
  await withWorkosClient(async ({ emulator, workos }) => {
    assert.equal(await workos.revokeSession("session_01UNKNOWN"), false);
    assert.equal(await workos.revokeSession(""), false);
    assert.equal(emulator.revokedSessions.size, 0);
  });
});

Deno.test("revokeSession returns false within timeoutMs when WorkOS hangs", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    const result = await workos.exchangeCode(code, codeVerifier);
    assert.ok(result.ok);
    emulator.failWith = "hang";
    const started = Date.now();
    assert.equal(await workos.revokeSession(result.sessionId), false);
    assert.ok(Date.now() - started < 1_000);
    assert.equal(emulator.revokedSessions.size, 0);
  }, { auth: { timeoutMs: 300 } });
});

Deno.test("logoutUrl points at the emulator with the session id and ends the session there", async () => {
  await withWorkosClient(async ({ emulator, workos, signIn }) => {
    const { code, codeVerifier } = await signIn();
    const result = await workos.exchangeCode(code, codeVerifier);
    assert.ok(result.ok);
    const url = new URL(workos.logoutUrl(result.sessionId, "https://app.example.com/bye"));
    assert.equal(url.origin, emulator.url);
    assert.equal(url.pathname, "/user_management/sessions/logout");
    assert.equal(url.searchParams.get("session_id"), result.sessionId);
    assert.equal(url.searchParams.get("return_to"), "https://app.example.com/bye");

    const answer = await fetch(url, { redirect: "manual" });
    await answer.body?.cancel();
    assert.equal(answer.status, 302);
    assert.equal(answer.headers.get("location"), "https://app.example.com/bye");
    assert.ok(emulator.revokedSessions.has(result.sessionId));
  });
});
