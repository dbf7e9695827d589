/**
 * Provisioning of Supabase Auth users (SPEC §6 signup-webhook): one SQL call per delivery, which
 * reads the auth.users row itself and only ever moves forward, so deliveries may repeat and come
 * in any order.
 */
import { callFunction, type Database } from "./db.ts";

export type ProvisionResult =
  | { person_id: string; workspace_id: string | null; email_conflict: boolean }
  | { ignored: string };

/**
 * Provisions the auth user `userId` (person, own workspace, welcome email, app metadata).
 * `emailConfirmation: "off"` (SUPABASE_EMAIL_CONFIRMATION) means Supabase Auth confirms emails
 * without asking the user: the email then proves nothing and stays off the person.
 */
export async function provisionAuthUser(
  sql: Database,
  user: { userId: string; emailConfirmation: "required" | "off" },
  now: Date,
): Promise<ProvisionResult> {
  return await callFunction(sql, "identity.provision_auth_user", {
    p_user_id: user.userId,
    p_email_confirmation_proves: user.emailConfirmation === "required",
    p_now: now,
  });
}

/** Whether `email` has an open invitation (before-user-created in invite mode). */
export async function hasOpenInvitation(
  sql: Database,
  email: string | null,
  now: Date,
): Promise<boolean> {
  return await callFunction(sql, "identity.has_open_invitation", { p_email: email, p_now: now });
}
