/**
 * The tokens of a deployment (SPEC §5, §9): the access-token codec over the JWT keys and the
 * refresh-token codec, keys imported once. The token response is token_response.ts.
 */
import type { CoreConfig } from "./config.ts";
import { type AccessTokens, createAccessTokens } from "./jwt.ts";
import { createRefreshTokens, type RefreshTokens } from "./refresh_tokens.ts";
import { createJwtKeyring, type JwtKeyring } from "./signing_keys.ts";

export interface SessionTokens {
  access: AccessTokens;
  refresh: RefreshTokens;
  /** The JWT keys: the jwks function publishes them, the API-key check reads legacy keys. */
  keyring: JwtKeyring;
}

/** Access and refresh token codecs for a deployment; keys are derived and imported once. */
export function createSessionTokens(core: CoreConfig): SessionTokens {
  const keyring = createJwtKeyring({ signingKeys: core.signingKeys, hs256Secret: core.jwtSecret });
  return {
    access: createAccessTokens(core, keyring),
    refresh: createRefreshTokens(core.sessionSecrets),
    keyring,
  };
}

export { type TokenResponse, tokenResponse } from "./token_response.ts";
