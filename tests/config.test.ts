import assert from "node:assert/strict";
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import { createHandler as createMeHandler } from "../supabase/functions/me/handler.ts";
import { dbTest } from "./support/db.ts";
import { testDeps, testEnv } from "./support/deps.ts";
import { call } from "./support/http.ts";

dbTest("a missing JWT_SECRET makes me answer 503 naming the variable", async () => {
  const me = createMeHandler(testDeps({ env: { JWT_SECRET: undefined } }));
  const res = await call(me, "me", { token: "anything" });
  assert.equal(res.status, 503);
  assert.equal(res.body.code, "NOT_CONFIGURED");
  assert.match(res.body.message, /JWT_SECRET is missing/);
});

Deno.test("a short JWT_SECRET is reported by name, never by value", () => {
  const shortSecret = "short-secret-value";
  const { core } = loadConfig(testEnv({ JWT_SECRET: shortSecret }));
  assert.equal(core.ok, false);
  assert.ok(!core.ok && core.variable === "JWT_SECRET");
  assert.ok(!core.ok && core.message.includes("at least 32 characters"));
  assert.ok(!core.ok && !core.message.includes(shortSecret));
});

Deno.test("malformed core values are reported by name", () => {
  const cases: [Record<string, string>, string][] = [
    [{ SUPABASE_URL: "not a url" }, "SUPABASE_URL"],
    [{ SUPABASE_DB_URL: "mysql://x" }, "SUPABASE_DB_URL"],
    [{ ACCESS_TOKEN_TTL_SECONDS: "soon" }, "ACCESS_TOKEN_TTL_SECONDS"],
    [{ SIGNUP_MODE: "closed" }, "SIGNUP_MODE"],
  ];
  for (const [overrides, variable] of cases) {
    const { core } = loadConfig(testEnv(overrides));
    assert.ok(!core.ok && core.variable === variable, variable);
    assert.match(!core.ok ? core.message : "", new RegExp(`^${variable} is malformed`));
  }
});

Deno.test("core settings default as the SPEC says", () => {
  const { core } = loadConfig(testEnv({ SUPABASE_URL: "https://abc.supabase.co/" }));
  assert.ok(core.ok);
  assert.equal(core.value.issuer, "https://abc.supabase.co/auth/v1");
  assert.equal(core.value.accessTokenTtlSeconds, 3600);
  assert.equal(core.value.signupMode, "open");
});

Deno.test("each feature is off, naming its first missing variable, until configured", () => {
  const config = loadConfig(testEnv());
  assert.deepEqual(config.stytch, {
    ok: false,
    variable: "STYTCH_PROJECT_ID",
    message: "STYTCH_PROJECT_ID is missing",
    malformed: false,
  });
  assert.ok(!config.workos.ok && config.workos.variable === "WORKOS_API_KEY");
  assert.ok(!config.whatsapp.ok && config.whatsapp.variable === "WHATSAPP_VERIFY_TOKEN");
  assert.ok(!config.signupWebhook.ok && config.signupWebhook.variable === "SIGNUP_HOOK_SECRET");
});

Deno.test("WorkOS settings parse the redirect allow-list and refuse a short cookie password", () => {
  const workos = {
    WORKOS_API_KEY: "sk_test_x",
    WORKOS_CLIENT_ID: "client_x",
    WORKOS_REDIRECT_URI: "https://abc.supabase.co/functions/v1/workos-callback",
    WORKOS_COOKIE_PASSWORD: "p".repeat(32),
    ALLOWED_REDIRECT_URLS: "https://console.test, myapp://auth",
  };
  const config = loadConfig(testEnv(workos));
  assert.ok(config.workos.ok);
  assert.deepEqual(config.workos.value.allowedRedirectUrls, [
    "https://console.test",
    "myapp://auth",
  ]);
  assert.equal(config.workos.value.apiUrl, "https://api.workos.com");

  const short = loadConfig(testEnv({ ...workos, WORKOS_COOKIE_PASSWORD: "p".repeat(31) }));
  assert.ok(!short.workos.ok && short.workos.variable === "WORKOS_COOKIE_PASSWORD");
  const badList = loadConfig(testEnv({ ...workos, ALLOWED_REDIRECT_URLS: "console.test" }));
  assert.ok(!badList.workos.ok && badList.workos.variable === "ALLOWED_REDIRECT_URLS");
});

Deno.test("signup webhook settings split rotated hook secrets", () => {
  const config = loadConfig(testEnv({ SIGNUP_HOOK_SECRET: "v1,whsec_aaa|v1,whsec_bbb" }));
  assert.ok(config.signupWebhook.ok);
  assert.deepEqual(config.signupWebhook.value.hookSecrets, ["v1,whsec_aaa", "v1,whsec_bbb"]);
});
