import assert from "node:assert/strict";
import {
  type ApiKeys,
  createApiKeyMatcher,
  parseApiKeys,
  presentedApiKey,
} from "../supabase/functions/_shared/api_keys.ts";

// Shaped like Supabase's keys: a prefix, then random base64url.
const publishableKey = "sb_publishable_Qm9vbGVhbiBwdWJsaXNoYWJsZSBrZXk_a1";
const otherPublishableKey = "sb_publishable_V2ViIGFwcCBrZXkgZm9yIHRlc3RzIG9ubHk_b2";
const secretKey = "sb_secret_U2VjcmV0IGtleSBmb3IgdGVzdHMgb25seSBwbGVhc2U_c3";
const otherSecretKey = "sb_secret_QW5vdGhlciBzZWNyZXQga2V5IGZvciB0ZXN0cw_d4";

function parsedKeys(env: Record<string, string | undefined>): ApiKeys {
  const parsed = parseApiKeys(env);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.keys;
}

// --- parseApiKeys ------------------------------------------------------------------------------

Deno.test("parseApiKeys reads the named JSON objects Supabase injects", () => {
  const keys = parsedKeys({
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({
      default: publishableKey,
      web: otherPublishableKey,
    }),
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: secretKey }),
  });
  assert.deepEqual(keys, {
    publishable: [publishableKey, otherPublishableKey],
    secret: [secretKey],
  });
});

Deno.test("parseApiKeys reads the singular forms", () => {
  const keys = parsedKeys({
    SUPABASE_PUBLISHABLE_KEY: publishableKey,
    SUPABASE_SECRET_KEY: secretKey,
  });
  assert.deepEqual(keys, { publishable: [publishableKey], secret: [secretKey] });
});

Deno.test("parseApiKeys merges the named and singular forms and removes duplicates", () => {
  const keys = parsedKeys({
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: publishableKey, copy: publishableKey }),
    SUPABASE_PUBLISHABLE_KEY: publishableKey,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: secretKey }),
    SUPABASE_SECRET_KEY: otherSecretKey,
  });
  assert.deepEqual(keys, { publishable: [publishableKey], secret: [secretKey, otherSecretKey] });
});

Deno.test("parseApiKeys treats unset, empty and blank variables and values as no key", () => {
  assert.deepEqual(parsedKeys({}), { publishable: [], secret: [] });
  assert.deepEqual(
    parsedKeys({
      SUPABASE_PUBLISHABLE_KEYS: "",
      SUPABASE_PUBLISHABLE_KEY: "  ",
      SUPABASE_SECRET_KEYS: JSON.stringify({ default: "", blank: " " }),
      SUPABASE_SECRET_KEY: undefined,
    }),
    { publishable: [], secret: [] },
  );
  assert.deepEqual(parsedKeys({ SUPABASE_PUBLISHABLE_KEYS: "{}" }), {
    publishable: [],
    secret: [],
  });
});

Deno.test("parseApiKeys trims the whitespace an env file leaves around values", () => {
  const keys = parsedKeys({
    SUPABASE_PUBLISHABLE_KEYS: ` {"default":" ${publishableKey}\\n"} \n`,
    SUPABASE_SECRET_KEY: `${secretKey}\n`,
  });
  assert.deepEqual(keys, { publishable: [publishableKey], secret: [secretKey] });
});

Deno.test("parseApiKeys names a malformed variable without quoting its value", () => {
  const malformed: [string, string][] = [
    ["SUPABASE_PUBLISHABLE_KEYS", `{"default":"${publishableKey}"`],
    ["SUPABASE_PUBLISHABLE_KEYS", publishableKey],
    ["SUPABASE_SECRET_KEYS", `${secretKey}`],
    ["SUPABASE_SECRET_KEYS", `["${secretKey}"]`],
    ["SUPABASE_SECRET_KEYS", `"${secretKey}"`],
    ["SUPABASE_SECRET_KEYS", "null"],
    ["SUPABASE_SECRET_KEYS", "42"],
  ];
  for (const [variable, value] of malformed) {
    const parsed = parseApiKeys({ [variable]: value });
    assert.equal(parsed.ok, false, value);
    if (parsed.ok) continue;
    assert.equal(parsed.variable, variable);
    assert.match(parsed.message, new RegExp(`^${variable} is malformed`));
    assert.ok(!parsed.message.includes(publishableKey.slice(0, 20)), parsed.message);
    assert.ok(!parsed.message.includes(secretKey.slice(0, 16)), parsed.message);
  }
});

Deno.test("parseApiKeys refuses non-string values in the named object", () => {
  for (const value of [42, null, true, [secretKey], { nested: secretKey }]) {
    const parsed = parseApiKeys({
      SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: publishableKey }),
      SUPABASE_SECRET_KEYS: JSON.stringify({ default: secretKey, broken: value }),
    });
    assert.equal(parsed.ok, false, JSON.stringify(value));
    if (parsed.ok) continue;
    assert.equal(parsed.variable, "SUPABASE_SECRET_KEYS");
    assert.ok(!parsed.message.includes(secretKey.slice(0, 16)));
  }
});

// --- createApiKeyMatcher -----------------------------------------------------------------------

const matcher = createApiKeyMatcher({
  publishable: [publishableKey, otherPublishableKey],
  secret: [secretKey, otherSecretKey],
});

Deno.test("match tells a publishable key from a secret key, whichever of them is presented", async () => {
  assert.equal(await matcher.match(publishableKey), "publishable");
  assert.equal(await matcher.match(otherPublishableKey), "publishable");
  assert.equal(await matcher.match(secretKey), "secret");
  assert.equal(await matcher.match(otherSecretKey), "secret");
});

Deno.test("match refuses a wrong key of the same length and near misses", async () => {
  const sameLength = secretKey.slice(0, -1) + (secretKey.endsWith("3") ? "4" : "3");
  assert.equal(sameLength.length, secretKey.length);
  assert.equal(await matcher.match(sameLength), null);
  assert.equal(await matcher.match(secretKey.slice(0, -1)), null);
  assert.equal(await matcher.match(`${secretKey}x`), null);
  assert.equal(await matcher.match(secretKey.toUpperCase()), null);
  assert.equal(await matcher.match(` ${publishableKey}`), null);
  assert.equal(await matcher.match("sb_secret_"), null);
});

Deno.test("match never throws on odd input", async () => {
  const odd: unknown[] = [
    "",
    " ",
    "\0",
    "x".repeat(1_000_000),
    "\u{1F511}".repeat(1000),
    "\uD800",
    `${secretKey}\uDC00`,
    "Bearer " + secretKey,
    null,
    undefined,
    42,
  ];
  for (const candidate of odd) {
    assert.equal(await matcher.match(candidate as string), null, String(candidate).slice(0, 40));
  }
});

Deno.test("match with no configured key matches nothing, the empty string included", async () => {
  const empty = createApiKeyMatcher({ publishable: [], secret: [] });
  assert.equal(await empty.match(""), null);
  assert.equal(await empty.match(publishableKey), null);
  const withEmptyKey = createApiKeyMatcher({ publishable: [""], secret: [""] });
  assert.equal(await withEmptyKey.match(""), null);
});

Deno.test("a key listed as both publishable and secret only counts as publishable", async () => {
  const overlapping = createApiKeyMatcher({ publishable: [secretKey], secret: [secretKey] });
  assert.equal(await overlapping.match(secretKey), "publishable");
});

Deno.test("a matcher built from parseApiKeys matches the keys of every variable", async () => {
  const fromEnv = createApiKeyMatcher(parsedKeys({
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: publishableKey }),
    SUPABASE_PUBLISHABLE_KEY: otherPublishableKey,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: secretKey }),
    SUPABASE_SECRET_KEY: otherSecretKey,
  }));
  assert.equal(await fromEnv.match(publishableKey), "publishable");
  assert.equal(await fromEnv.match(otherPublishableKey), "publishable");
  assert.equal(await fromEnv.match(secretKey), "secret");
  assert.equal(await fromEnv.match(otherSecretKey), "secret");
});

// --- presentedApiKey ---------------------------------------------------------------------------

function request(headers: Record<string, string>): Request {
  return new Request("http://127.0.0.1:54321/functions/v1/otp-send", { headers });
}

Deno.test("presentedApiKey reads the apikey header first, else the bearer token", () => {
  assert.equal(presentedApiKey(request({ apikey: publishableKey })), publishableKey);
  assert.equal(
    presentedApiKey(request({ apikey: publishableKey, authorization: `Bearer ${secretKey}` })),
    publishableKey,
  );
  assert.equal(presentedApiKey(request({ authorization: `Bearer ${secretKey}` })), secretKey);
  assert.equal(presentedApiKey(request({ authorization: `bearer  ${secretKey} ` })), secretKey);
  assert.equal(
    presentedApiKey(request({ apikey: " ", authorization: `Bearer ${secretKey}` })),
    secretKey,
  );
});

Deno.test("presentedApiKey is null without a credential", () => {
  assert.equal(presentedApiKey(request({})), null);
  assert.equal(presentedApiKey(request({ apikey: "" })), null);
  assert.equal(presentedApiKey(request({ authorization: "Bearer" })), null);
  assert.equal(presentedApiKey(request({ authorization: "Bearer " })), null);
  assert.equal(presentedApiKey(request({ authorization: secretKey })), null);
  assert.equal(presentedApiKey(request({ authorization: `Basic ${btoa("a:b")}` })), null);
  assert.equal(presentedApiKey(request({ authorization: `Bearer ${secretKey} extra` })), null);
});
