/**
 * Stytch email OTP sign-in end to end over HTTP: the local server (every function, verify_jwt from
 * supabase/config.toml), the local Stytch emulator behind the real SDK, and the test database.
 * Called as a web page would (fetch with the anon key) and as a mobile app would
 * (`@supabase/supabase-js` `functions.invoke`).
 */
import { type OtpStack as Stack, startOtpStack as startStack } from "./support/stytch.ts";
import assert from "node:assert/strict";
import { createClient, FunctionsHttpError } from "@supabase/supabase-js";
import { jwtVerify } from "jose";
import { mintAnonKey } from "../local/server.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { testJwtSecret, testSupabaseUrl } from "./support/deps.ts";
import { randomIp } from "./support/http.ts";

const secretKey = new TextEncoder().encode(testJwtSecret);

async function post(
  stack: Stack,
  name: string,
  body: unknown,
  headers: Record<string, string> = {},
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${stack.server.functionsUrl}/${name}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${stack.anonKey}`,
      "content-type": "application/json",
      "x-forwarded-for": randomIp(),
      ...headers,
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

dbTest(
  "over HTTP: send, read the code, verify, then me and refresh answer the same person",
  async () => {
    await using stack = await startStack();
    const email = uniqueEmail("http");

    const sent = await post(stack, "otp-send", { email });
    assert.equal(sent.status, 200);
    assert.ok(sent.headers.get("x-request-id"));
    const code = stack.stytch.lastCodeFor(email);
    assert.match(code ?? "", /^\d{6}$/);

    const verified = await post(stack, "otp-verify", { method_id: sent.body.method_id, code });
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal(verified.headers.get("cache-control"), "no-store");
    assert.equal(verified.body.is_new_user, true);
    const person = verified.body.person;
    assert.equal(person.email, email);

    const { payload, protectedHeader } = await jwtVerify(verified.body.access_token, secretKey, {
      algorithms: ["HS256"],
      issuer: `${testSupabaseUrl}/auth/v1`,
      audience: "authenticated",
      currentDate: stack.clock.now(),
    });
    assert.deepEqual(protectedHeader, { alg: "HS256", typ: "JWT" });
    assert.equal(payload.sub, person.id);
    assert.equal(payload.role, "authenticated");
    assert.equal(payload.email, email);
    assert.equal(payload.is_anonymous, false);
    assert.equal(payload.aal, "aal1");
    assert.deepEqual(payload.amr, [{ method: "otp", timestamp: payload.iat }]);
    const appMetadata = payload.app_metadata as Record<string, unknown>;
    assert.equal(appMetadata.provider, "stytch");
    assert.deepEqual(appMetadata.providers, ["stytch"]);
    assert.equal(payload.exp! - payload.iat!, verified.body.expires_in);

    const me = await fetch(`${stack.server.functionsUrl}/me`, {
      headers: { authorization: `Bearer ${verified.body.access_token}` },
    });
    assert.equal(me.status, 200);
    assert.deepEqual((await me.json()).person, person);

    stack.clock.advanceSeconds(120);
    const refreshed = await post(stack, "refresh", { refresh_token: verified.body.refresh_token });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.deepEqual(refreshed.body.person, person);
    assert.notEqual(refreshed.body.refresh_token, verified.body.refresh_token);
    const { payload: next } = await jwtVerify(refreshed.body.access_token, secretKey, {
      currentDate: stack.clock.now(),
    });
    assert.equal(next.sub, person.id);
    assert.equal(next.session_id, payload.session_id);
    assert.equal(next.iat, payload.iat! + 120);

    const [{ persons, sessions }] = await testSql()`
    select
      (select count(*)::int from identity.person where email = ${email}) as persons,
      (select count(*)::int from identity.session where person_id = ${person.id}) as sessions`;
    assert.deepEqual({ persons, sessions }, { persons: 1, sessions: 1 });
  },
);

dbTest(
  "over HTTP: otp-send and otp-verify need a project API key, and Stytch is not called without one",
  async () => {
    await using stack = await startStack();
    const email = uniqueEmail("nojwt");
    const wrongKey = await mintAnonKey(
      "another-project-secret-of-32-characters!",
      stack.clock.now(),
    );

    const missing = await post(stack, "otp-send", { email }, { authorization: "" });
    const forged = await post(stack, "otp-send", { email }, {
      authorization: `Bearer ${wrongKey}`,
    });
    const verify = await post(
      stack,
      "otp-verify",
      { method_id: "email-test-1", code: "123456" },
      { authorization: "" },
    );

    for (const res of [missing, forged, verify]) {
      assert.equal(res.status, 401);
      assert.equal(res.body.code, "INVALID_API_KEY"); // SPEC §9, mode `publishable`
    }
    assert.deepEqual(stack.stytch.calls, { loginOrCreate: 0, authenticate: 0 });
  },
);

dbTest("over HTTP: a browser's CORS preflight is answered without a JWT", async () => {
  await using stack = await startStack();
  for (const name of ["otp-send", "otp-verify"]) {
    const res = await fetch(`${stack.server.functionsUrl}/${name}`, {
      method: "OPTIONS",
      headers: {
        origin: "http://127.0.0.1:3000",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, apikey, content-type, x-client-info",
      },
    });
    await res.body?.cancel();
    assert.equal(res.status, 204, name);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(
      res.headers.get("access-control-allow-headers"),
      "authorization, x-client-info, apikey, content-type",
    );
    assert.match(res.headers.get("access-control-allow-methods") ?? "", /POST/);
  }
});

dbTest(
  "a mobile app signs in with supabase-js functions.invoke (otp-send, otp-verify, me)",
  async () => {
    await using stack = await startStack();
    const email = uniqueEmail("mobile");
    const ip = randomIp();
    const supabase = createClient(stack.server.url, stack.anonKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    });

    const sent = await supabase.functions.invoke<{ method_id: string }>("otp-send", {
      body: { email },
      headers: { "x-forwarded-for": ip },
    });
    assert.equal(sent.error, null);
    assert.ok(sent.data?.method_id);
    const code = stack.stytch.codeFor(sent.data.method_id);

    const verified = await supabase.functions.invoke("otp-verify", {
      body: { method_id: sent.data.method_id, code },
    });
    assert.equal(verified.error, null);
    assert.equal(verified.data.token_type, "bearer");
    assert.equal(verified.data.is_new_user, true);
    assert.equal(verified.data.person.email, email);

    // The app then calls functions with the platform token, as with any third-party-auth token.
    const signedIn = createClient(stack.server.url, stack.anonKey, {
      accessToken: () => Promise.resolve(verified.data.access_token),
    });
    const me = await signedIn.functions.invoke("me", { method: "GET" });
    assert.equal(me.error, null);
    assert.equal(me.data.person.id, verified.data.person.id);

    // A limit reaches the app as a FunctionsHttpError carrying the response.
    const again = await supabase.functions.invoke("otp-send", {
      body: { email },
      headers: { "x-forwarded-for": ip },
    });
    assert.ok(again.error instanceof FunctionsHttpError);
    const response = again.error.context as Response;
    assert.equal(response.status, 429);
    assert.equal(response.headers.get("retry-after"), "60");
    assert.equal((await response.json()).code, "RATE_LIMITED");
    assert.equal(stack.stytch.calls.loginOrCreate, 1);
  },
);
