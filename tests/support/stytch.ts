/** Pointing the Stytch settings at a local emulator. */
import type { Env } from "../../supabase/functions/_shared/config.ts";
import type { StytchEmulator } from "../../local/emulators/stytch.ts";

/** STYTCH_* variables for a running emulator. */
export function stytchEnv(stytch: StytchEmulator): Env {
  return {
    STYTCH_PROJECT_ID: stytch.projectId,
    STYTCH_SECRET: stytch.secret,
    STYTCH_API_URL: stytch.url,
  };
}
