/** Signing a person in without a provider, for tests of what comes after sign-in. */
import type { Deps } from "../../supabase/functions/_shared/deps.ts";
import { signIn } from "../../supabase/functions/_shared/session_store.ts";
import {
  createSessionTokens,
  type TokenResponse,
  tokenResponse,
} from "../../supabase/functions/_shared/tokens.ts";
import { uniqueEmail } from "./db.ts";

/** Signs a new (or the given) person in as a provider would, and returns the token response. */
export async function signInForTest(
  deps: Deps,
  options: { email?: string; provider?: "stytch" | "workos"; providerUserId?: string } = {},
): Promise<TokenResponse & { refresh_token: string }> {
  if (!deps.config.core.ok || !deps.sql) throw new Error("test deps need the core config");
  const provider = options.provider ?? "stytch";
  const email = options.email ?? uniqueEmail();
  const result = await signIn(deps.sql, {
    provider,
    providerUserId: options.providerUserId ?? `${provider}-user-${crypto.randomUUID()}`,
    email,
    emailVerified: true,
    displayName: null,
  }, { signupMode: deps.config.core.value.signupMode, now: deps.now() });
  if (!result.ok) throw new Error(`sign-in failed: ${result.error}`);
  const tokens = await tokenResponse(
    createSessionTokens(deps.config.core.value),
    result,
    deps.now(),
  );
  return { ...tokens, refresh_token: tokens.refresh_token! };
}
