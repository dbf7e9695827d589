/** A workspace with an owner, an admin, a member and an outsider, for the workspaces tests. */
import { decodeJwt } from "jose";
import type { Sql } from "../../supabase/functions/_shared/db.ts";
import { testSql, uniqueEmail } from "./db.ts";
import { type TestDeps, testDeps } from "./deps.ts";
import { signInForTest } from "./sessions.ts";

export interface TestPerson {
  id: string;
  email: string;
  providerUserId: string;
  access_token: string;
  refresh_token: string;
  /** The workspace the person owns since their first sign-in. */
  personalWorkspaceId: string;
}

/** Signs a new person in (Stytch, verified email). */
export async function signedInPerson(
  deps: TestDeps,
  label = "person",
  email = uniqueEmail(label),
): Promise<TestPerson> {
  const providerUserId = `stytch-user-${crypto.randomUUID()}`;
  const session = await signInForTest(deps, { email, providerUserId });
  const claims = decodeJwt(session.access_token) as { app_metadata: { workspace_id: string } };
  return {
    id: session.person.id,
    email,
    providerUserId,
    access_token: session.access_token,
    refresh_token: session.refresh_token,
    personalWorkspaceId: claims.app_metadata.workspace_id,
  };
}

/** Signs an existing person in again (a new session), at the clock of `deps`. */
export async function signInAgain(deps: TestDeps, person: TestPerson) {
  return await signInForTest(deps, { email: person.email, providerUserId: person.providerUserId });
}

export interface Team {
  deps: TestDeps;
  workspaceId: string;
  owner: TestPerson;
  admin: TestPerson;
  member: TestPerson;
  /** Signed in, not a member of the workspace. */
  outsider: TestPerson;
  /** An open invitation of the workspace (for an email nobody has). */
  invitationId: string;
}

/** A workspace "Acme" with an owner, an admin and a member, plus an outsider and an invitation. */
export async function team(deps: TestDeps = testDeps()): Promise<Team> {
  const [owner, admin, member, outsider] = await Promise.all(
    ["owner", "admin", "member", "outsider"].map((label) => signedInPerson(deps, label)),
  );
  const [workspace] = await testSql()`
    insert into identity.workspace (name, created_by) values ('Acme', ${owner.id}) returning id`;
  // Joined a second after their first sign-in, so "earliest membership" is never a tie.
  const joinedAt = new Date(deps.now().getTime() + 1000);
  await testSql()`
    insert into identity.membership (workspace_id, person_id, role, created_at) values
      (${workspace.id}, ${owner.id}, 'owner', ${joinedAt}),
      (${workspace.id}, ${admin.id}, 'admin', ${joinedAt}),
      (${workspace.id}, ${member.id}, 'member', ${joinedAt})`;
  const [invitation] = await testSql()`
    insert into identity.invitation (email, workspace_id, role, invited_by, created_at, expires_at)
    values (${uniqueEmail("pending")}, ${workspace.id}, 'member', ${owner.id}, ${deps.now()},
      ${new Date(deps.now().getTime() + 86_400_000)})
    returning id`;
  return {
    deps,
    workspaceId: workspace.id,
    owner,
    admin,
    member,
    outsider,
    invitationId: invitation.id,
  };
}

/** Everything a workspace operation may change, to show that a refused call changed nothing. */
export async function workspaceState(workspaceId: string) {
  const [state] = await testSql()`
    select
      (select coalesce(jsonb_agg(jsonb_build_array(person_id, role) order by person_id), '[]')
        from identity.membership where workspace_id = ${workspaceId}) as members,
      (select coalesce(jsonb_agg(jsonb_build_array(id, email, role, expires_at, accepted_at) order by id), '[]')
        from identity.invitation where workspace_id = ${workspaceId}) as invitations,
      (select count(*)::int from identity.email_outbox o
        join identity.invitation i on i.id = o.invitation_id
        where i.workspace_id = ${workspaceId}) as emails,
      (select coalesce(jsonb_agg(jsonb_build_array(s.id, s.workspace_id) order by s.id), '[]')
        from identity.session s join identity.membership m on m.person_id = s.person_id
        where m.workspace_id = ${workspaceId}) as sessions`;
  return state;
}

/**
 * A pool that records every statement sent through it: tagged-template queries, `unsafe` (what
 * callFunction sends: one simple query, one round trip) and transactions.
 */
export function countingSql(sql: Sql = testSql()): { sql: Sql; statements: string[] } {
  const statements: string[] = [];
  const counted = new Proxy(sql, {
    apply(target, thisArg, args) {
      statements.push(String((args[0] as string[] | undefined)?.join?.("$") ?? args[0]));
      return Reflect.apply(target, thisArg, args);
    },
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if ((property === "unsafe" || property === "begin") && typeof value === "function") {
        return (...args: unknown[]) => {
          statements.push(property === "unsafe" ? String(args[0]) : "begin");
          return value.apply(target, args);
        };
      }
      return value;
    },
  });
  return { sql: counted, statements };
}
