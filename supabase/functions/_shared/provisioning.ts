/**
 * Provisioning of Supabase Auth users (SPEC §6 signup-webhook): one SQL call per delivery, which
 * reads the auth.users row itself and only ever moves forward, so deliveries may repeat and come
 * in any order.
 */
import { callFunction, type Sql } from "./db.ts";

export type ProvisionResult =
  | { person_id: string; workspace_id: string | null; email_conflict: boolean }
  | { ignored: string };

/** Provisions the auth user `userId` (person, own workspace, welcome email, app metadata). */
export async function provisionAuthUser(
  sql: Sql,
  userId: string,
  now: Date,
): Promise<ProvisionResult> {
  return await callFunction(sql, "identity.provision_auth_user", {
    p_user_id: userId,
    p_now: now,
  });
}

/** Whether `email` has an open invitation (before-user-created in invite mode). */
export async function hasOpenInvitation(
  sql: Sql,
  email: string | null,
  now: Date,
): Promise<boolean> {
  return await callFunction(sql, "identity.has_open_invitation", { p_email: email, p_now: now });
}
