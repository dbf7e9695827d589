/**
 * The token response every sign-in path answers with (SPEC §5): an access token (a platform JWT)
 * and a refresh token, minted from a session payload with the deployment's codecs (tokens.ts,
 * which a function loads with its core services, not at start).
 */
import type { TokenSubject } from "./jwt.ts";
import type { Person } from "./person.ts";
import type { SessionPayload } from "./session_store.ts";
import type { SessionTokens } from "./tokens.ts";

export interface TokenResponse {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
  expires_at: number;
  refresh_token?: string;
  person: Person;
}

/**
 * The token response of SPEC §5 for a session payload. `withRefreshToken: false` for the
 * bearer-only refresh, which extends an access token without handing out the refresh token.
 */
export async function tokenResponse(
  tokens: SessionTokens,
  payload: SessionPayload,
  now: Date,
  options: { withRefreshToken: boolean } = { withRefreshToken: true },
): Promise<TokenResponse> {
  const access = await tokens.access.mint(tokenSubject(payload), now);
  const response: TokenResponse = {
    access_token: access.token,
    token_type: "bearer",
    expires_in: access.expiresIn,
    expires_at: access.expiresAt,
    person: payload.person,
  };
  if (options.withRefreshToken) {
    response.refresh_token = await tokens.refresh.issue({
      sessionId: payload.session_id,
      counter: payload.refresh_counter,
    });
  }
  return response;
}

function tokenSubject(payload: SessionPayload): TokenSubject {
  const { claims } = payload;
  return {
    personId: payload.person.id,
    email: claims.email,
    phone: claims.phone,
    sessionId: payload.session_id,
    generation: payload.refresh_counter,
    provider: claims.provider,
    providers: claims.providers,
    amrMethod: claims.amr_method,
    amrTimestamp: claims.amr_timestamp,
    workspaceId: claims.workspace_id,
    workspaceRole: claims.workspace_role,
  };
}
