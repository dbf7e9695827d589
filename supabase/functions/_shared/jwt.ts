/**
 * The platform JWT (SPEC §5): HS256 with the project's JWT secret, claims in the shape Supabase
 * Auth issues, `sub` = person id, so `auth.uid()` in row-level security resolves to the person.
 */
import { CompactSign, compactVerify } from "jose";
import type { JWTPayload } from "jose";

/** Who and what a token is for; comes from the session payload of identity.session_payload(). */
export interface TokenSubject {
  personId: string;
  email: string;
  phone: string;
  sessionId: string;
  provider: "stytch" | "workos";
  providers: string[];
  amrMethod: "otp" | "sso/oauth";
  /** Unix seconds when the person signed in. */
  amrTimestamp: number;
  workspaceId: string | null;
  workspaceRole: string | null;
}

export interface PlatformClaims extends JWTPayload {
  sub: string;
  exp: number;
  iat: number;
  role: string;
  email: string;
  phone: string;
  session_id: string;
  is_anonymous: boolean;
  aal: string;
  amr: { method: string; timestamp: number }[];
  app_metadata: Record<string, unknown>;
  user_metadata: Record<string, unknown>;
}

export interface MintedToken {
  token: string;
  expiresIn: number;
  /** Unix seconds. */
  expiresAt: number;
}

export type VerifyResult =
  | { ok: true; claims: PlatformClaims }
  | { ok: false; reason: "expired" | "invalid" };

export interface AccessTokens {
  mint(subject: TokenSubject, now: Date): Promise<MintedToken>;
  /** A platform access token: HS256 with our secret, our issuer, audience `authenticated`. */
  verify(token: string, now: Date): Promise<VerifyResult>;
}

const audience = "authenticated";
const header = { alg: "HS256", typ: "JWT" };
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const clockToleranceSeconds = 30;
const verifiedCacheSize = 1024;

/** Imports the HMAC key once; mint and verify reuse it for the life of the process. */
export function createAccessTokens(
  config: { jwtSecret: string; issuer: string; accessTokenTtlSeconds: number },
): AccessTokens {
  const key = crypto.subtle.importKey(
    "raw",
    encoder.encode(config.jwtSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );

  // Tokens already verified: a session's token comes back on every request, so a repeat skips the
  // HMAC and the parsing. Only tokens that passed every check are kept, keyed by their whole text;
  // expiry is checked again on every hit; the oldest entries go first.
  const verified = new Map<string, PlatformClaims>();

  /**
   * jose checks the signature (HS256 only: `alg: none` and every other algorithm are refused); the
   * claims checks are ours, the few SPEC §5 asks for.
   */
  async function check(token: string, now: Date): Promise<VerifyResult> {
    const nowSeconds = now.getTime() / 1000;
    let claims = verified.get(token);
    if (!claims) {
      try {
        const { payload } = await compactVerify(token, await key, { algorithms: ["HS256"] });
        claims = JSON.parse(decoder.decode(payload)) as PlatformClaims;
      } catch {
        return { ok: false, reason: "invalid" };
      }
      if (
        typeof claims !== "object" || claims === null || typeof claims.exp !== "number" ||
        claims.iss !== config.issuer || !hasAudience(claims.aud, audience) ||
        (typeof claims.nbf === "number" && claims.nbf > nowSeconds + clockToleranceSeconds)
      ) {
        return { ok: false, reason: "invalid" };
      }
      if (verified.size >= verifiedCacheSize) verified.delete(verified.keys().next().value!);
      verified.set(token, claims);
    }
    if (claims.exp <= nowSeconds - clockToleranceSeconds) {
      verified.delete(token);
      return { ok: false, reason: "expired" };
    }
    return { ok: true, claims };
  }

  return {
    async mint(subject, now) {
      const iat = Math.floor(now.getTime() / 1000);
      const exp = iat + config.accessTokenTtlSeconds;
      const appMetadata: Record<string, unknown> = {
        provider: subject.provider,
        providers: subject.providers,
      };
      if (subject.workspaceId) {
        appMetadata.workspace_id = subject.workspaceId;
        appMetadata.workspace_role = subject.workspaceRole;
      }
      const claims = {
        iss: config.issuer,
        sub: subject.personId,
        aud: audience,
        exp,
        iat,
        email: subject.email,
        phone: subject.phone,
        app_metadata: appMetadata,
        user_metadata: {},
        role: "authenticated",
        aal: "aal1",
        amr: [{ method: subject.amrMethod, timestamp: subject.amrTimestamp }],
        session_id: subject.sessionId,
        is_anonymous: false,
      };
      // CompactSign over our own JSON: SignJWT would deep-copy and re-validate claims we built.
      const token = await new CompactSign(encoder.encode(JSON.stringify(claims)))
        .setProtectedHeader(header)
        .sign(await key);
      return { token, expiresIn: exp - iat, expiresAt: exp };
    },

    async verify(token, now) {
      const result = await check(token, now);
      if (!result.ok) return result;
      const { sub, session_id } = result.claims;
      // Tokens we mint always carry both as UUIDs; anything else is not a platform session token.
      if (!isUuid(sub) || !isUuid(session_id)) {
        return { ok: false, reason: "invalid" };
      }
      return result;
    },
  };
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a UUID string in its canonical form. */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && uuidPattern.test(value);
}

function hasAudience(aud: unknown, audience: string): boolean {
  return aud === audience || (Array.isArray(aud) && aud.includes(audience));
}
