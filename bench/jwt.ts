/**
 * Platform JWT mint + verify (jose, our claims and checks) against raw WebCrypto HMAC-SHA256 sign +
 * verify over the same bytes: what our JWT layer costs above the cryptography itself.
 */
import { CompactSign, compactVerify } from "jose";
import { decodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import { createAccessTokens, type TokenSubject } from "../supabase/functions/_shared/jwt.ts";
import { type BenchResult, compareRates } from "./harness.ts";

export async function benchJwt(): Promise<BenchResult> {
  const secret = "bench-jwt-secret-with-at-least-32-characters";
  const tokens = createAccessTokens({
    jwtSecret: secret,
    issuer: "http://127.0.0.1:54321/auth/v1",
    accessTokenTtlSeconds: 3600,
  });
  const now = new Date();
  const subject: TokenSubject = {
    personId: crypto.randomUUID(),
    email: "ada@example.test",
    phone: "",
    sessionId: crypto.randomUUID(),
    provider: "stytch",
    providers: ["stytch"],
    amrMethod: "otp",
    amrTimestamp: Math.floor(now.getTime() / 1000),
    workspaceId: crypto.randomUUID(),
    workspaceRole: "owner",
  };

  // The baseline signs and verifies exactly the bytes a minted token signs.
  const sample = (await tokens.mint(subject, now)).token;
  const signingInput = new TextEncoder().encode(sample.split(".").slice(0, 2).join("."));
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );

  const raw = async () => {
    const signature = await crypto.subtle.sign("HMAC", key, signingInput);
    if (!await crypto.subtle.verify("HMAC", key, signature, signingInput)) throw new Error("bad");
  };

  // Every token minted is new (its amr timestamp counts up), so verify never meets a token it has
  // already checked: the figure is the full cost of both.
  let minted = 0;
  const { rate, baselineRate } = await compareRates(async () => {
    const token = await tokens.mint(
      { ...subject, amrTimestamp: subject.amrTimestamp + ++minted },
      now,
    );
    if (!(await tokens.verify(token.token, now)).ok) throw new Error("bad");
  }, raw);

  // What jose alone costs over the raw HMAC, signing and verifying the same payload with no claims
  // built and none checked: the ceiling of any jose-based mint+verify.
  const payload = decodeBase64Url(sample.split(".")[1])!;
  const jose = await compareRates(async () => {
    const token = await new CompactSign(payload).setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(key);
    await compactVerify(token, key, { algorithms: ["HS256"] });
  }, raw);

  return {
    name: "JWT mint+verify",
    rate,
    baselineRate,
    target: 0.5,
    unit: "mint+verify/s",
    baseline: "raw WebCrypto HMAC sign+verify of the same bytes",
    reference: {
      what: "jose's own CompactSign + compactVerify of the same payload, no claims or checks",
      ratio: jose.rate / jose.baselineRate,
    },
  };
}
