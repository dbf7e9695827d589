/**
 * Single use of a WorkOS sign-in state (SPEC §6 workos-login): the state's nonce is consumed in
 * Postgres before WorkOS is called, so a replayed callback never reaches WorkOS.
 */
import { callFunction, type Database } from "./db.ts";
import type { LoginState } from "./state.ts";

/** Consumes the state's nonce: true the first time, false for a replay. */
export async function consumeWorkosState(
  sql: Database,
  state: LoginState,
  now: Date,
): Promise<boolean> {
  const consumed = await callFunction<boolean>(sql, "identity.consume_workos_state", {
    p_nonce: state.nonce,
    p_expires_at: state.expiresAt,
    p_now: now,
  });
  return consumed === true;
}
