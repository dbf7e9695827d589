/**
 * The workspace SQL (SPEC §10): list, switch, members, role changes, removal and invitations. One
 * typed function per SQL function, each one round trip and one transaction; the role rules and
 * the locking that makes them safe under concurrency live in the SQL (migration
 * 20261129000400_workspaces.sql). A refusal comes back as a reason; the handler picks the status.
 */
import { callFunction, type Database } from "./db.ts";
import type { SessionPayload } from "./session_store.ts";

export const workspaceRoles = ["owner", "admin", "member"] as const;
export type WorkspaceRole = typeof workspaceRoles[number];

/** The caller's session, as their access token names it. */
export interface SessionRef {
  sessionId: string;
  personId: string;
}

/**
 * Why an operation was refused:
 * - `session_revoked`: the access token's session was revoked or has expired;
 * - `not_renewable`: switch was asked with an access token that may no longer be renewed
 *   (older refresh generation, or too long after the last sign-in or rotation: SPEC §13.3);
 * - `workspace_not_found`: no such workspace, or the caller is not a member of it;
 * - `member_not_found`, `invitation_not_found`: in a workspace the caller belongs to;
 * - `forbidden`: the caller's role does not allow it;
 * - `not_a_member`: switch to a workspace the caller does not belong to;
 * - `last_owner`: the change would leave the workspace without an owner;
 * - `already_a_member`: an invitation for an email that is already a member's.
 */
export type WorkspaceRefusal =
  | "session_revoked"
  | "not_renewable"
  | "workspace_not_found"
  | "member_not_found"
  | "invitation_not_found"
  | "forbidden"
  | "not_a_member"
  | "last_owner"
  | "already_a_member";

export type Outcome<T> = { ok: true; value: T } | { ok: false; refusal: WorkspaceRefusal };

export interface WorkspaceListing {
  workspaces: { id: string; name: string; role: WorkspaceRole; current: boolean }[];
}

export interface Member {
  person_id: string;
  display_name: string | null;
  email: string | null;
  role: WorkspaceRole;
  joined_at: string;
}

export interface Invitation {
  id: string;
  email: string;
  role: WorkspaceRole;
  expires_at: string;
}

export interface OpenInvitation extends Invitation {
  /** The person who invited last, or null when a secret key did. */
  invited_by: string | null;
  created_at: string;
}

/** Who creates an invitation: a signed-in owner or admin, or a backend job with the secret key. */
export type Inviter = { kind: "user"; session: SessionRef } | { kind: "secret" };

type Answer<T> = T | { error: WorkspaceRefusal };

function outcome<T extends object>(answer: Answer<T>): Outcome<T> {
  return "error" in answer ? { ok: false, refusal: answer.error } : { ok: true, value: answer };
}

/** The caller's workspaces, marking the one the session's next token carries. */
export async function listWorkspaces(
  sql: Database,
  session: SessionRef,
  now: Date,
): Promise<Outcome<WorkspaceListing>> {
  return outcome(
    await callFunction<Answer<WorkspaceListing>>(sql, "identity.list_workspaces", {
      p_session_id: session.sessionId,
      p_person_id: session.personId,
      p_now: now,
    }),
  );
}

/**
 * Makes `workspaceId` the session's current workspace and returns the session payload to mint
 * the new access token from. `generation` is the presented access token's `session_generation`.
 */
export async function switchWorkspace(
  sql: Database,
  session: SessionRef & { generation: number },
  workspaceId: string,
  now: Date,
): Promise<Outcome<SessionPayload>> {
  return outcome(
    await callFunction<Answer<SessionPayload>>(sql, "identity.switch_workspace", {
      p_session_id: session.sessionId,
      p_person_id: session.personId,
      p_generation: session.generation,
      p_workspace_id: workspaceId,
      p_now: now,
    }),
  );
}

/** The members of a workspace the caller belongs to. */
export async function listMembers(
  sql: Database,
  session: SessionRef,
  workspaceId: string,
  now: Date,
): Promise<Outcome<{ members: Member[] }>> {
  return outcome(
    await callFunction<Answer<{ members: Member[] }>>(sql, "identity.list_members", {
      p_session_id: session.sessionId,
      p_person_id: session.personId,
      p_workspace_id: workspaceId,
      p_now: now,
    }),
  );
}

/** Gives a member another role; answers the member as they now are. */
export async function updateMemberRole(
  sql: Database,
  session: SessionRef,
  change: { workspaceId: string; personId: string; role: WorkspaceRole },
  now: Date,
): Promise<Outcome<Member>> {
  const result = outcome(
    await callFunction<Answer<{ member: Member }>>(sql, "identity.update_member_role", {
      p_session_id: session.sessionId,
      p_person_id: session.personId,
      p_workspace_id: change.workspaceId,
      p_member_id: change.personId,
      p_role: change.role,
      p_now: now,
    }),
  );
  return result.ok ? { ok: true, value: result.value.member } : result;
}

/** Removes a member (or the caller themself: leaving). */
export async function removeMember(
  sql: Database,
  session: SessionRef,
  member: { workspaceId: string; personId: string },
  now: Date,
): Promise<Outcome<{ removed: true }>> {
  return outcome(
    await callFunction<Answer<{ removed: true }>>(sql, "identity.remove_member", {
      p_session_id: session.sessionId,
      p_person_id: session.personId,
      p_workspace_id: member.workspaceId,
      p_member_id: member.personId,
      p_now: now,
    }),
  );
}

/**
 * Invites `email` into a workspace and queues the invitation email. `created` is false when an
 * open invitation of the email was renewed (same id, new role and expiry).
 */
export async function createInvitation(
  sql: Database,
  inviter: Inviter,
  invitation: { workspaceId: string; email: string; role: WorkspaceRole },
  now: Date,
): Promise<Outcome<{ invitation: Invitation; created: boolean }>> {
  const session = inviter.kind === "user" ? inviter.session : null;
  return outcome(
    await callFunction<Answer<{ invitation: Invitation; created: boolean }>>(
      sql,
      "identity.create_invitation",
      {
        p_session_id: session?.sessionId ?? null,
        p_person_id: session?.personId ?? null,
        p_by_secret_key: inviter.kind === "secret",
        p_workspace_id: invitation.workspaceId,
        p_email: invitation.email,
        p_role: invitation.role,
        p_now: now,
      },
    ),
  );
}

/** The open invitations of a workspace. */
export async function listInvitations(
  sql: Database,
  session: SessionRef,
  workspaceId: string,
  now: Date,
): Promise<Outcome<{ invitations: OpenInvitation[] }>> {
  return outcome(
    await callFunction<Answer<{ invitations: OpenInvitation[] }>>(
      sql,
      "identity.list_invitations",
      {
        p_session_id: session.sessionId,
        p_person_id: session.personId,
        p_workspace_id: workspaceId,
        p_now: now,
      },
    ),
  );
}

/** Revokes (deletes) an invitation that was not accepted; its waiting email is not sent. */
export async function revokeInvitation(
  sql: Database,
  session: SessionRef,
  invitation: { workspaceId: string; invitationId: string },
  now: Date,
): Promise<Outcome<{ revoked: true }>> {
  return outcome(
    await callFunction<Answer<{ revoked: true }>>(sql, "identity.revoke_invitation", {
      p_session_id: session.sessionId,
      p_person_id: session.personId,
      p_workspace_id: invitation.workspaceId,
      p_invitation_id: invitation.invitationId,
      p_now: now,
    }),
  );
}
