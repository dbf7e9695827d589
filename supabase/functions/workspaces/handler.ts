/**
 * workspaces — a person's workspaces, their members and invitations (SPEC §10), one function with
 * sub-paths. Mode `user-or-secret`: a platform access token in `Authorization: Bearer` for every
 * route; the project's secret key (`apikey`) only for creating invitations (a backend job).
 *
 *   GET    /workspaces                               anyone: { workspaces: [{ id, name, role,
 *                                                    current }] }
 *   POST   /workspaces/{id}/switch                   a member: token response, same session
 *   GET    /workspaces/{id}/members                  a member: { members: [...] }
 *   PATCH  /workspaces/{id}/members/{person_id}      owner, admin ({ role }): the member
 *   DELETE /workspaces/{id}/members/{person_id}      owner, admin, the member themself: 204
 *   POST   /workspaces/{id}/invitations              owner, admin, secret key ({ email, role }):
 *                                                    201, or 200 when an open one was renewed
 *   GET    /workspaces/{id}/invitations              owner, admin: { invitations: [...] }
 *   DELETE /workspaces/{id}/invitations/{inv_id}     owner, admin: 204
 *
 * Supabase hands the function its own path (`/workspaces/...`); the local server hands it the
 * whole `/functions/v1/workspaces/...`. Both are routed here.
 *
 * A workspace the caller is not a member of answers 404 NOT_FOUND like one that does not exist,
 * so ids cannot be probed; a role that does not allow the call is 403 FORBIDDEN; switching to a
 * workspace the caller does not belong to is 403 NOT_A_MEMBER; leaving a workspace without an
 * owner is 409 LAST_OWNER. Each call is one SQL function, one transaction (workspaces.ts).
 *
 * Switch answers an access token for the same session with the new current workspace in
 * `app_metadata`, and no refresh token: the client keeps its refresh token, and the session
 * remembers the workspace, so later refreshes keep it. Minting a token from a token is a renewal,
 * so switch is refused (401) for an access token the bearer-only refresh would not renew either.
 */
import { type AuthenticatedCaller, sessionRevoked } from "../_shared/auth.ts";
import type { Deps } from "../_shared/deps.ts";
import { type Handler, HttpError, json } from "../_shared/http.ts";
import { defineHandler } from "../_shared/pipeline.ts";
import { tokenResponse } from "../_shared/token_response.ts";
import { emailAddress, lazySchemas, readJson, validate } from "../_shared/validate.ts";
import {
  createInvitation,
  listInvitations,
  listMembers,
  listWorkspaces,
  removeMember,
  revokeInvitation,
  type SessionRef,
  switchWorkspace,
  updateMemberRole,
  type WorkspaceRefusal,
  workspaceRoles,
} from "../_shared/workspaces.ts";

const roleMessage = "must be owner, admin or member";

/**
 * The request bodies and ids this function validates, built on first use; also read by the API
 * document (local/openapi.ts).
 */
export const requestSchemas = lazySchemas((zod) => {
  const { z } = zod;
  /** A role; an absent one reaches validate() as `invalid_type` on undefined, read as "required". */
  const role = z.string({ error: (issue) => issue.input === undefined ? undefined : roleMessage })
    .pipe(z.enum(workspaceRoles, { error: roleMessage }));
  /** Any 8-4-4-4-12 hexadecimal id, as Postgres's uuid type reads it. */
  const id = z.guid({ error: "must be a uuid" });
  return {
    updateMember: z.object({ role }),
    invite: z.object({ email: emailAddress(zod), role: role.default("member") }),
    /** The ids a route names (`id`, `person_id`, `invitation_id`), each a uuid. */
    ids: (names: string[]) => z.object(Object.fromEntries(names.map((name) => [name, id]))),
  };
});

/** What a sub-path names, before its ids are checked. */
type Route =
  | { kind: "workspaces" }
  | { kind: "switch"; id: string }
  | { kind: "members"; id: string }
  | { kind: "member"; id: string; person_id: string }
  | { kind: "invitations"; id: string }
  | { kind: "invitation"; id: string; invitation_id: string };

const routeMethods: Record<Route["kind"], readonly string[]> = {
  workspaces: ["GET"],
  switch: ["POST"],
  members: ["GET"],
  member: ["PATCH", "DELETE"],
  invitations: ["GET", "POST"],
  invitation: ["DELETE"],
};

const functionPath = /^(?:\/functions\/v1)?\/workspaces(?=\/|$)/;
const noStore = { "cache-control": "no-store" };

/** The route of a request path, or null for a path this function does not serve. */
function route(pathname: string): Route | null {
  const prefix = functionPath.exec(pathname);
  if (!prefix) return null;
  const parts = pathname.slice(prefix[0].length).split("/").filter((part) => part !== "");
  const [workspaceId, collection, itemId, ...rest] = parts;
  if (rest.length > 0) return null;
  if (parts.length === 0) return { kind: "workspaces" };
  if (parts.length === 2 && collection === "switch") return { kind: "switch", id: workspaceId };
  if (collection === "members") {
    return itemId === undefined
      ? { kind: "members", id: workspaceId }
      : { kind: "member", id: workspaceId, person_id: itemId };
  }
  if (collection === "invitations") {
    return itemId === undefined
      ? { kind: "invitations", id: workspaceId }
      : { kind: "invitation", id: workspaceId, invitation_id: itemId };
  }
  return null;
}

/** The ids of a route, each a uuid or 400 naming it (`id`, `person_id`, `invitation_id`). */
async function checkIds<R extends Route>(matched: R): Promise<R> {
  const { kind: _kind, ...ids } = matched;
  validate((await requestSchemas()).ids(Object.keys(ids)), ids);
  return matched;
}

const refusalStatus: Record<WorkspaceRefusal, () => HttpError> = {
  session_revoked: sessionRevoked,
  not_renewable: () =>
    new HttpError(
      401,
      "UNAUTHORIZED",
      "This access token can no longer be renewed; refresh with the refresh token",
    ),
  workspace_not_found: () => new HttpError(404, "NOT_FOUND", "Workspace not found"),
  member_not_found: () => new HttpError(404, "NOT_FOUND", "Member not found"),
  invitation_not_found: () => new HttpError(404, "NOT_FOUND", "Invitation not found"),
  forbidden: () =>
    new HttpError(403, "FORBIDDEN", "Your role in this workspace does not allow this"),
  not_a_member: () => new HttpError(403, "NOT_A_MEMBER", "You are not a member of this workspace"),
  last_owner: () => new HttpError(409, "LAST_OWNER", "A workspace must keep at least one owner"),
  already_a_member: () =>
    new HttpError(409, "ALREADY_A_MEMBER", "This email already belongs to a member"),
};

/** The value of a successful operation, or the HTTP error of its refusal. */
function unwrap<T>(result: { ok: true; value: T } | { ok: false; refusal: WorkspaceRefusal }): T {
  if (!result.ok) throw refusalStatus[result.refusal]();
  return result.value;
}

/** The signed-in caller's session; a secret key may only create invitations. */
function userSession(caller: AuthenticatedCaller): SessionRef & { generation: number } {
  if (caller.kind !== "user") {
    throw new HttpError(
      403,
      "FORBIDDEN",
      "A secret API key may only create invitations; this call needs a signed-in person",
    );
  }
  return {
    sessionId: caller.claims.session_id,
    personId: caller.claims.sub,
    generation: caller.claims.session_generation ?? 0,
  };
}

export function createHandler(deps: Deps): Handler {
  return defineHandler(
    deps,
    {
      name: "workspaces",
      methods: ["GET", "POST", "PATCH", "DELETE"],
      cors: true,
      auth: "user-or-secret",
      requires: ["core"],
    },
    async (req, { core, caller, now, log }) => {
      const matched = route(new URL(req.url).pathname);
      if (!matched) throw new HttpError(404, "NOT_FOUND", "No such workspaces route");
      const allowed = routeMethods[matched.kind];
      if (!allowed.includes(req.method)) {
        throw new HttpError(405, "METHOD_NOT_ALLOWED", `Method ${req.method} is not allowed`, {
          allow: allowed.join(", "),
        });
      }
      const r = await checkIds(matched);
      const { sql } = core;

      switch (r.kind) {
        case "workspaces":
          return json(unwrap(await listWorkspaces(sql, userSession(caller), now)));

        case "switch": {
          const session = userSession(caller);
          const payload = unwrap(await switchWorkspace(sql, session, r.id, now));
          log.info("workspace_switched", { session_id: session.sessionId, workspace_id: r.id });
          return json(
            await tokenResponse(core.tokens, payload, now, { withRefreshToken: false }),
            200,
            noStore,
          );
        }

        case "members":
          return json(unwrap(await listMembers(sql, userSession(caller), r.id, now)));

        case "member": {
          const session = userSession(caller);
          const target = { workspaceId: r.id, personId: r.person_id };
          if (req.method === "PATCH") {
            const { role } = await readJson(req, (await requestSchemas()).updateMember);
            const member = unwrap(await updateMemberRole(sql, session, { ...target, role }, now));
            log.info("member_role_changed", { workspace_id: r.id, person_id: r.person_id, role });
            return json(member);
          }
          unwrap(await removeMember(sql, session, target, now));
          log.info("member_removed", {
            workspace_id: r.id,
            person_id: r.person_id,
            left: r.person_id === session.personId,
          });
          return new Response(null, { status: 204 });
        }

        case "invitations": {
          if (req.method === "GET") {
            return json(unwrap(await listInvitations(sql, userSession(caller), r.id, now)));
          }
          const body = await readJson(req, (await requestSchemas()).invite);
          const inviter = caller.kind === "secret"
            ? { kind: "secret" as const }
            : { kind: "user" as const, session: userSession(caller) };
          const { invitation, created } = unwrap(
            await createInvitation(sql, inviter, { workspaceId: r.id, ...body }, now),
          );
          log.info(created ? "invitation_created" : "invitation_renewed", {
            workspace_id: r.id,
            invitation_id: invitation.id,
            by: inviter.kind,
          });
          return json(invitation, created ? 201 : 200);
        }

        case "invitation": {
          const session = userSession(caller);
          unwrap(
            await revokeInvitation(sql, session, {
              workspaceId: r.id,
              invitationId: r.invitation_id,
            }, now),
          );
          log.info("invitation_revoked", { workspace_id: r.id, invitation_id: r.invitation_id });
          return new Response(null, { status: 204 });
        }
      }
    },
  );
}
