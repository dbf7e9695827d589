import assert from "node:assert/strict";
import { encodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import { jsonSegment, textSegment } from "./support/segments.ts";
import { decodeJwt, decodeProtectedHeader, SignJWT } from "jose";
import { createAccessTokens, type TokenSubject } from "../supabase/functions/_shared/jwt.ts";
import { createJwtKeyring } from "../supabase/functions/_shared/signing_keys.ts";
import { createHandler as createMeHandler } from "../supabase/functions/me/handler.ts";
import { dbTest } from "./support/db.ts";
import { testDeps, testJwtSecret, testSupabaseUrl } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

const issuer = `${testSupabaseUrl}/auth/v1`;
const tokens = createAccessTokens(
  { issuer, accessTokenTtlSeconds: 3600 },
  createJwtKeyring({ signingKeys: [], hs256Secret: testJwtSecret }),
);
const now = new Date("2026-11-22T12:00:00Z");
const nowSeconds = now.getTime() / 1000;

const subject: TokenSubject = {
  personId: "5b0e8a52-3c1f-4e0b-9a57-0d2f3c4b5a69",
  email: "ada@example.test",
  phone: "",
  sessionId: "9f1c2d3e-4b5a-4697-8a1b-2c3d4e5f6a7b",
  generation: 0,
  provider: "stytch",
  providers: ["stytch"],
  amrMethod: "otp",
  amrTimestamp: nowSeconds - 5,
  workspaceId: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
  workspaceRole: "owner",
};

/** Signs arbitrary claims the way an attacker (or another system) might. */
function sign(
  claims: Record<string, unknown>,
  options: { alg?: string; secret?: string } = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(options.secret ?? testJwtSecret));
}

function validClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: issuer,
    aud: "authenticated",
    role: "authenticated",
    sub: subject.personId,
    session_id: subject.sessionId,
    iat: nowSeconds,
    exp: nowSeconds + 3600,
    ...overrides,
  };
}

Deno.test("mint issues the claims of SPEC §5 in Supabase Auth's shape", async () => {
  const minted = await tokens.mint(subject, now);
  assert.deepEqual(decodeProtectedHeader(minted.token), { alg: "HS256", typ: "JWT" });
  assert.deepEqual(decodeJwt(minted.token), {
    iss: issuer,
    sub: subject.personId,
    aud: "authenticated",
    iat: nowSeconds,
    exp: nowSeconds + 3600,
    email: "ada@example.test",
    phone: "",
    role: "authenticated",
    aal: "aal1",
    amr: [{ method: "otp", timestamp: nowSeconds - 5 }],
    session_id: subject.sessionId,
    session_generation: 0,
    is_anonymous: false,
    app_metadata: {
      provider: "stytch",
      providers: ["stytch"],
      workspace_id: subject.workspaceId,
      workspace_role: "owner",
    },
    user_metadata: {},
  });
  assert.equal(minted.expiresIn, 3600);
  assert.equal(minted.expiresAt, nowSeconds + 3600);
});

Deno.test("mint leaves workspace claims out for a person without a workspace", async () => {
  const minted = await tokens.mint({ ...subject, workspaceId: null, workspaceRole: null }, now);
  assert.deepEqual(decodeJwt(minted.token).app_metadata, {
    provider: "stytch",
    providers: ["stytch"],
  });
});

Deno.test("verify accepts a minted token and one within 30 s past its expiry", async () => {
  const minted = await tokens.mint(subject, now);
  assert.equal((await tokens.verify(minted.token, now)).ok, true);
  const skewed = new Date((minted.expiresAt + 29) * 1000);
  assert.equal((await tokens.verify(minted.token, skewed)).ok, true);
});

Deno.test("verify re-checks the expiry of a token it has already verified", async () => {
  const minted = await tokens.mint(subject, now);
  assert.equal((await tokens.verify(minted.token, now)).ok, true);
  const later = new Date((minted.expiresAt + 31) * 1000);
  assert.deepEqual(await tokens.verify(minted.token, later), { ok: false, reason: "expired" });
});

Deno.test("a project JWT such as the anon key is not a platform token", async () => {
  const anonKey = await sign({ role: "anon", iss: "supabase", exp: nowSeconds + 60 });
  assert.deepEqual(await tokens.verify(anonKey, now), { ok: false, reason: "invalid" });
});

const rejected: [string, () => Promise<string>, "invalid" | "expired"][] = [
  ["alg none", () => Promise.resolve(unsecured(validClaims())), "invalid"],
  ["HS512", () => sign(validClaims(), { alg: "HS512" }), "invalid"],
  [
    "another secret",
    () => sign(validClaims(), { secret: "another-secret-of-at-least-32-chars!!" }),
    "invalid",
  ],
  ["a tampered payload", async () => tamper(await sign(validClaims())), "invalid"],
  ["expired beyond 30 s", () => sign(validClaims({ exp: nowSeconds - 31 })), "expired"],
  ["a wrong audience", () => sign(validClaims({ aud: "anon" })), "invalid"],
  ["a wrong issuer", () => sign(validClaims({ iss: "https://evil.test/auth/v1" })), "invalid"],
  ["no expiry", () => sign(validClaims({ exp: undefined })), "invalid"],
  ["a sub that is not a uuid", () => sign(validClaims({ sub: "admin" })), "invalid"],
  ["garbage", () => Promise.resolve("not.a.jwt"), "invalid"],
  ["an empty string", () => Promise.resolve(""), "invalid"],
  // SPEC §13.10: claims and signatures held to the letter.
  ["exp 1e999 (never expires)", () => signText(claimsText({ exp: "1e999" })), "invalid"],
  ["a fractional exp", () => sign(validClaims({ exp: nowSeconds + 60.5 })), "invalid"],
  ["a string iat", () => sign(validClaims({ iat: String(nowSeconds) })), "invalid"],
  ["a string nbf", () => sign(validClaims({ nbf: String(nowSeconds + 600) })), "invalid"],
  ["an nbf in the future", () => sign(validClaims({ nbf: nowSeconds + 600 })), "invalid"],
  ["role service_role", () => sign(validClaims({ role: "service_role" })), "invalid"],
  ["no role", () => sign(validClaims({ role: undefined })), "invalid"],
  ["a padded signature", async () => `${await sign(validClaims())}=`, "invalid"],
  [
    "a signature with altered unused bits",
    async () => alterLowBits(await sign(validClaims())),
    "invalid",
  ],
];

/** The JSON text of valid claims with raw `overrides` spliced in (values as JSON text). */
function claimsText(overrides: Record<string, string>): string {
  const claims = { ...validClaims() } as Record<string, unknown>;
  for (const key of Object.keys(overrides)) delete claims[key];
  const raw = Object.entries(overrides).map(([key, value]) => `"${key}":${value}`).join(",");
  return JSON.stringify(claims).replace(/^\{/, `{${raw},`);
}

/** HS256 over an exact payload text (JSON no library would write, such as 1e999). */
async function signText(payload: string): Promise<string> {
  const input = `${jsonSegment({ alg: "HS256", typ: "JWT" })}.${textSegment(payload)}`;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(testJwtSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(input)),
  );
  return `${input}.${encodeBase64Url(mac)}`;
}

/** The same token whose signature's last character differs only in bits base64 ignores. */
function alterLowBits(token: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const last = alphabet.indexOf(token.at(-1)!);
  // A 32-byte HMAC is 43 characters: the last one carries 4 bits and 2 unused ones.
  return token.slice(0, -1) + alphabet[last ^ 1];
}

for (const [label, token, reason] of rejected) {
  Deno.test(`verify rejects ${label}`, async () => {
    assert.deepEqual(await tokens.verify(await token(), now), { ok: false, reason });
  });
}

dbTest("me answers 401 for every rejected token, TOKEN_EXPIRED for an expired one", async () => {
  const deps = testDeps();
  const handler = createMeHandler(deps);
  // A real session, so only the token itself is wrong.
  const session = await signInForTest(deps);
  const claims = decodeJwt(session.access_token);
  const nowS = Math.floor(deps.now().getTime() / 1000);
  const base = { ...claims, iat: nowS, exp: nowS + 3600 };
  const cases: [string, string, string][] = [
    ["alg none", unsecured(base), "UNAUTHORIZED"],
    ["HS512", await sign(base, { alg: "HS512" }), "UNAUTHORIZED"],
    ["other secret", await sign(base, { secret: "x".repeat(40) }), "UNAUTHORIZED"],
    ["tampered", tamper(session.access_token), "UNAUTHORIZED"],
    ["expired", await sign({ ...base, exp: nowS - 31 }), "TOKEN_EXPIRED"],
    ["wrong aud", await sign({ ...base, aud: "anon" }), "UNAUTHORIZED"],
    ["wrong iss", await sign({ ...base, iss: "supabase" }), "UNAUTHORIZED"],
    ["garbage", "garbage", "UNAUTHORIZED"],
  ];
  for (const [label, token, code] of cases) {
    const res = await call(handler, "me", { token });
    assert.equal(res.status, 401, label);
    assert.equal(res.body.code, code, label);
  }
  assert.equal((await call(handler, "me", { token: session.access_token })).status, 200);
});

/** An `alg: none` token with the given claims. */
function unsecured(claims: Record<string, unknown>): string {
  return `${jsonSegment({ alg: "none", typ: "JWT" })}.${jsonSegment(claims)}.`;
}

/** The same token with its payload changed (role escalated), signature kept. */
function tamper(token: string): string {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
  const forged = jsonSegment({ ...claims, role: "service_role" });
  return `${header}.${forged}.${signature}`;
}
