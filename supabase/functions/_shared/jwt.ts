/**
 * The platform JWT (SPEC §5, §9): claims in the shape Supabase Auth issues, `sub` = person id, so
 * `auth.uid()` in row-level security resolves to the person. Signed with the first key of
 * JWT_SIGNING_KEYS (ES256/RS256, with its `kid`), else HS256 with the legacy JWT secret; verified
 * by `kid` with the key's own algorithm, or HS256 while the secret is set (signing_keys.ts).
 */
import type { JWTPayload } from "jose";
import type { JwtKeyring } from "./signing_keys.ts";

/** Who and what a token is for; comes from the session payload of the session SQL. */
export interface TokenSubject {
  personId: string;
  email: string;
  phone: string;
  sessionId: string;
  /** The session's refresh generation when the token was minted (bearer renewal checks it). */
  generation: number;
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
  /** The session's refresh generation at minting: an older one cannot be renewed by bearer. */
  session_generation: number;
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
  /** A platform access token: one of our keys, our issuer, audience and role `authenticated`. */
  verify(token: string, now: Date): Promise<VerifyResult>;
}

const audience = "authenticated";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const clockToleranceSeconds = 30;
const verifiedCacheSize = 1024;

/** Mint and verify with `keyring` (its keys imported once, when it was built). */
export function createAccessTokens(
  config: { issuer: string; accessTokenTtlSeconds: number },
  keyring: JwtKeyring,
): AccessTokens {
  // Tokens already verified: a session's token comes back on every request, so a repeat skips the
  // signature and the parsing. Only tokens that passed every check are kept, keyed by their whole
  // text; expiry is checked again on every hit; the oldest entries go first.
  const verified = new Map<string, PlatformClaims>();

  /** The claims of a token whose signature and claims check out, or why not. */
  async function check(token: string, nowSeconds: number): Promise<VerifyResult> {
    const signed = await keyring.verify(token);
    if (!signed) return { ok: false, reason: "invalid" };
    let claims: unknown;
    try {
      claims = JSON.parse(decoder.decode(signed.payload));
    } catch {
      return { ok: false, reason: "invalid" };
    }
    if (!isPlatformClaims(claims, config.issuer, nowSeconds)) {
      return { ok: false, reason: "invalid" };
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
        session_generation: subject.generation,
        is_anonymous: false,
      };
      const token = await keyring.sign(encoder.encode(JSON.stringify(claims)));
      return { token, expiresIn: exp - iat, expiresAt: exp };
    },

    async verify(token, now) {
      const nowSeconds = now.getTime() / 1000;
      let claims = verified.get(token);
      if (!claims) {
        const result = await check(token, nowSeconds);
        if (!result.ok) return result;
        claims = result.claims;
        if (verified.size >= verifiedCacheSize) verified.delete(verified.keys().next().value!);
        verified.set(token, claims);
      }
      if (claims.exp <= nowSeconds - clockToleranceSeconds) {
        verified.delete(token);
        return { ok: false, reason: "expired" };
      }
      return { ok: true, claims };
    },
  };
}

/**
 * The checks SPEC §5 and §13.10 ask of a platform token's claims (the expiry aside, which is
 * re-checked on every use): our issuer and audience, role `authenticated`, `exp`/`iat`/`nbf` finite
 * integers, not before `nbf`, and a person and session that are UUIDs.
 */
function isPlatformClaims(
  claims: unknown,
  issuer: string,
  nowSeconds: number,
): claims is PlatformClaims {
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) return false;
  const c = claims as Record<string, unknown>;
  return c.iss === issuer && hasAudience(c.aud, audience) && c.role === "authenticated" &&
    Number.isSafeInteger(c.exp) && Number.isSafeInteger(c.iat) &&
    (c.nbf === undefined ||
      (Number.isSafeInteger(c.nbf) && (c.nbf as number) <= nowSeconds + clockToleranceSeconds)) &&
    Number.isSafeInteger(c.session_generation ?? 0) &&
    isUuid(c.sub) && isUuid(c.session_id);
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a UUID string in its canonical form. */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && uuidPattern.test(value);
}

function hasAudience(aud: unknown, audience: string): boolean {
  return aud === audience || (Array.isArray(aud) && aud.includes(audience));
}
