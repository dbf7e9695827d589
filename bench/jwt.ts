/**
 * Platform JWT mint + verify (our claims and checks, through the keyring) against jose's own
 * `CompactSign` + `compactVerify` of the same payload with the same key, no claims built and none
 * checked: what our JWT layer costs above the library that does the cryptography. Once for HS256
 * (the legacy secret) and once for ES256 (a signing key as `supabase gen signing-key` makes it).
 */
import { CompactSign, compactVerify, importJWK } from "jose";
import { decodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import { createAccessTokens, type TokenSubject } from "../supabase/functions/_shared/jwt.ts";
import {
  createJwtKeyring,
  type SigningKeyJwk,
} from "../supabase/functions/_shared/signing_keys.ts";
import { type BenchResult, compareRates } from "./harness.ts";

const issuer = "http://127.0.0.1:54321/auth/v1";
const secret = "bench-jwt-secret-with-at-least-32-characters";

export async function benchJwt(): Promise<BenchResult[]> {
  const signingKey = await generateEs256Key();
  return [
    await benchOne("HS256", createJwtKeyring({ signingKeys: [], hs256Secret: secret }), {
      sign: new TextEncoder().encode(secret),
      verify: new TextEncoder().encode(secret),
    }),
    await benchOne("ES256", createJwtKeyring({ signingKeys: [signingKey] }), {
      sign: await importJWK(withoutKeyOps(signingKey), "ES256"),
      verify: await importJWK(publicPart(signingKey), "ES256"),
    }),
  ];
}

async function benchOne(
  alg: "HS256" | "ES256",
  keyring: ReturnType<typeof createJwtKeyring>,
  joseKeys: { sign: CryptoKey | Uint8Array; verify: CryptoKey | Uint8Array },
): Promise<BenchResult> {
  const tokens = createAccessTokens({ issuer, accessTokenTtlSeconds: 3600 }, keyring);
  const now = new Date();
  const subject: TokenSubject = {
    personId: crypto.randomUUID(),
    email: "ada@example.test",
    phone: "",
    sessionId: crypto.randomUUID(),
    generation: 0,
    provider: "stytch",
    providers: ["stytch"],
    amrMethod: "otp",
    amrTimestamp: Math.floor(now.getTime() / 1000),
    workspaceId: crypto.randomUUID(),
    workspaceRole: "owner",
  };
  const sample = (await tokens.mint(subject, now)).token;
  const header = JSON.parse(new TextDecoder().decode(decodeBase64Url(sample.split(".")[0])!));
  const payload = decodeBase64Url(sample.split(".")[1])!;

  // Every token minted is new (its amr timestamp counts up), so verify never meets a token it has
  // already checked: the figure is the full cost of both.
  let minted = 0;
  const { rate, baselineRate } = await compareRates(async () => {
    const token = await tokens.mint(
      { ...subject, amrTimestamp: subject.amrTimestamp + ++minted },
      now,
    );
    if (!(await tokens.verify(token.token, now)).ok) throw new Error("bad");
  }, async () => {
    const token = await new CompactSign(payload).setProtectedHeader(header).sign(joseKeys.sign);
    await compactVerify(token, joseKeys.verify, { algorithms: [alg] });
  });
  return {
    name: `JWT ${alg} mint+verify`,
    rate,
    baselineRate,
    target: 0.75,
    unit: "mint+verify/s",
    baseline: `jose's CompactSign + compactVerify of the same payload with the same ${alg} key`,
  };
}

/** An ES256 private JWK shaped as `supabase gen signing-key --algorithm ES256` prints it. */
async function generateEs256Key(): Promise<SigningKeyJwk> {
  const { privateKey } = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  return {
    ...jwk,
    kty: "EC",
    kid: crypto.randomUUID(),
    alg: "ES256",
    d: jwk.d!,
    key_ops: ["sign", "verify"],
    use: "sig",
  };
}

function withoutKeyOps(key: SigningKeyJwk): Record<string, unknown> {
  const { key_ops: _ops, ext: _ext, use: _use, ...jwk } = key;
  return jwk;
}

function publicPart(key: SigningKeyJwk): Record<string, unknown> {
  const { d: _d, ...jwk } = withoutKeyOps(key);
  return jwk;
}
