/**
 * The workspaces function (SPEC §10) over HTTP: every row of the table with each kind of caller,
 * the role rules, invitations and their emails, switch and what refresh keeps, acceptance at
 * refresh in one round trip, removal, bad input, and the concurrency cases.
 */
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import type { CallOptions } from "./support/http.ts";
import { createHandler as createMeHandler } from "../supabase/functions/me/handler.ts";
import { createHandler as createLogoutHandler } from "../supabase/functions/logout/handler.ts";
import { createHandler as createRefreshHandler } from "../supabase/functions/refresh/handler.ts";
import { createHandler } from "../supabase/functions/workspaces/handler.ts";
import type { Deps } from "../supabase/functions/_shared/deps.ts";
import { startLocalServer } from "../local/server.ts";
import { asRole, dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { TestClock, testDeps, testEnv } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { testPublishableKey, testSecretKey } from "./support/keys.ts";
import {
  countingSql,
  signedInPerson,
  signInAgain,
  type Team,
  team,
  type TestPerson,
  workspaceState,
} from "./support/workspaces.ts";

type Claims = {
  session_id: string;
  sub: string;
  app_metadata: { workspace_id?: string; workspace_role?: string };
};
const claimsOf = (token: string) => decodeJwt(token) as unknown as Claims;
const day = 86_400;

// --- every row of the table, with each kind of caller ---------------------------------------

type CallerKind = "owner" | "admin" | "member" | "non-member" | "secret key" | "anon" | "expired";
const callerKinds: CallerKind[] = [
  "owner",
  "admin",
  "member",
  "non-member",
  "secret key",
  "anon",
  "expired",
];

/** How each kind of caller calls: a person's access token, the secret key, no token, or one expired. */
async function credentials(t: Team, kind: CallerKind): Promise<CallOptions> {
  switch (kind) {
    case "owner":
      return { token: t.owner.access_token };
    case "admin":
      return { token: t.admin.access_token };
    case "member":
      return { token: t.member.access_token };
    case "non-member":
      return { token: t.outsider.access_token };
    case "secret key":
      return { apiKey: testSecretKey };
    case "anon":
      return { apiKey: testPublishableKey };
    case "expired": {
      // The owner's own token, from a sign-in two hours ago (tokens live one hour).
      const past = testDeps({ clock: new TestClock(new Date(Date.now() - 2 * 3600_000)) });
      return { token: (await signInAgain(past, t.owner)).access_token };
    }
  }
}

interface Row {
  request: (t: Team) => { path: string; method: string; body?: unknown };
  /** Status (and code of an error) per kind of caller. */
  expected: Record<CallerKind, readonly [number, string?]>;
}

const unauthenticated = {
  "anon": [401, "UNAUTHORIZED"],
  "expired": [401, "TOKEN_EXPIRED"],
} as const;

const table: Record<string, Row> = {
  "GET /workspaces": {
    request: () => ({ path: "workspaces", method: "GET" }),
    expected: {
      owner: [200],
      admin: [200],
      member: [200],
      "non-member": [200],
      "secret key": [403, "FORBIDDEN"],
      ...unauthenticated,
    },
  },
  "POST /workspaces/{id}/switch": {
    request: (t) => ({ path: `workspaces/${t.workspaceId}/switch`, method: "POST" }),
    expected: {
      owner: [200],
      admin: [200],
      member: [200],
      "non-member": [403, "NOT_A_MEMBER"],
      "secret key": [403, "FORBIDDEN"],
      ...unauthenticated,
    },
  },
  "GET /workspaces/{id}/members": {
    request: (t) => ({ path: `workspaces/${t.workspaceId}/members`, method: "GET" }),
    expected: {
      owner: [200],
      admin: [200],
      member: [200],
      "non-member": [404, "NOT_FOUND"],
      "secret key": [403, "FORBIDDEN"],
      ...unauthenticated,
    },
  },
  "PATCH /workspaces/{id}/members/{person_id}": {
    request: (t) => ({
      path: `workspaces/${t.workspaceId}/members/${t.member.id}`,
      method: "PATCH",
      body: { role: "admin" },
    }),
    expected: {
      owner: [200],
      admin: [200],
      member: [403, "FORBIDDEN"],
      "non-member": [404, "NOT_FOUND"],
      "secret key": [403, "FORBIDDEN"],
      ...unauthenticated,
    },
  },
  "DELETE /workspaces/{id}/members/{person_id} (the member)": {
    request: (t) => ({
      path: `workspaces/${t.workspaceId}/members/${t.member.id}`,
      method: "DELETE",
    }),
    expected: {
      owner: [204],
      admin: [204],
      member: [204], // the member themself: leaving
      "non-member": [404, "NOT_FOUND"],
      "secret key": [403, "FORBIDDEN"],
      ...unauthenticated,
    },
  },
  "DELETE /workspaces/{id}/members/{person_id} (the admin)": {
    request: (t) => ({
      path: `workspaces/${t.workspaceId}/members/${t.admin.id}`,
      method: "DELETE",
    }),
    expected: {
      owner: [204],
      admin: [204], // the admin themself: leaving
      member: [403, "FORBIDDEN"],
      "non-member": [404, "NOT_FOUND"],
      "secret key": [403, "FORBIDDEN"],
      ...unauthenticated,
    },
  },
  "POST /workspaces/{id}/invitations": {
    request: (t) => ({
      path: `workspaces/${t.workspaceId}/invitations`,
      method: "POST",
      body: { email: uniqueEmail("invitee"), role: "member" },
    }),
    expected: {
      owner: [201],
      admin: [201],
      member: [403, "FORBIDDEN"],
      "non-member": [404, "NOT_FOUND"],
      "secret key": [201],
      ...unauthenticated,
    },
  },
  "GET /workspaces/{id}/invitations": {
    request: (t) => ({ path: `workspaces/${t.workspaceId}/invitations`, method: "GET" }),
    expected: {
      owner: [200],
      admin: [200],
      member: [403, "FORBIDDEN"],
      "non-member": [404, "NOT_FOUND"],
      "secret key": [403, "FORBIDDEN"],
      ...unauthenticated,
    },
  },
  "DELETE /workspaces/{id}/invitations/{invitation_id}": {
    request: (t) => ({
      path: `workspaces/${t.workspaceId}/invitations/${t.invitationId}`,
      method: "DELETE",
    }),
    expected: {
      owner: [204],
      admin: [204],
      member: [403, "FORBIDDEN"],
      "non-member": [404, "NOT_FOUND"],
      "secret key": [403, "FORBIDDEN"],
      ...unauthenticated,
    },
  },
};

for (const [name, row] of Object.entries(table)) {
  dbTest(
    `${name} answers each kind of caller as SPEC §10 says, and refusals write nothing`,
    async () => {
      for (const kind of callerKinds) {
        const t = await team();
        const handler = createHandler(t.deps);
        const { path, method, body } = row.request(t);
        const caller = await credentials(t, kind);
        const before = await workspaceState(t.workspaceId);
        const res = await call(handler, path, { method, body, ...caller });
        const [status, code] = row.expected[kind];
        assert.equal(
          res.status,
          status,
          `${kind}: ${JSON.stringify(res.body)} ${
            JSON.stringify(t.deps.logs.filter((l) => l.level === "error"))
          }`,
        );
        assert.ok(res.headers.get("x-request-id"));
        if (code) {
          assert.equal(res.body.code, code, kind);
          assert.deepEqual(await workspaceState(t.workspaceId), before, `${kind} changed nothing`);
        }
      }
    },
  );
}

// --- GET /workspaces and switch -----------------------------------------------------------------

dbTest(
  "GET /workspaces lists the person's workspaces with their role and the current one",
  async () => {
    const t = await team();
    const res = await call(createHandler(t.deps), "workspaces", { token: t.member.access_token });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      workspaces: [
        {
          id: t.member.personalWorkspaceId,
          name: res.body.workspaces[0].name,
          role: "owner",
          current: true,
        },
        { id: t.workspaceId, name: "Acme", role: "member", current: false },
      ],
    });
  },
);

dbTest("switch answers a token for the same session with the new current workspace", async () => {
  const t = await team();
  const handler = createHandler(t.deps);
  const res = await call(handler, `workspaces/${t.workspaceId}/switch`, {
    method: "POST",
    token: t.admin.access_token,
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.body.token_type, "bearer");
  assert.equal(res.body.refresh_token, undefined, "the client keeps its refresh token");
  assert.equal(res.body.person.id, t.admin.id);
  const claims = claimsOf(res.body.access_token);
  assert.equal(claims.session_id, claimsOf(t.admin.access_token).session_id);
  assert.equal(claims.app_metadata.workspace_id, t.workspaceId);
  assert.equal(claims.app_metadata.workspace_role, "admin");

  const list = await call(handler, "workspaces", { token: res.body.access_token });
  assert.deepEqual(
    list.body.workspaces.map((w: { id: string; current: boolean }) => [w.id, w.current]),
    [[t.admin.personalWorkspaceId, false], [t.workspaceId, true]],
  );
});

dbTest("after a switch, refresh and bearer-only refresh keep the switched workspace", async () => {
  const t = await team();
  const handler = createHandler(t.deps);
  const refresh = createRefreshHandler(t.deps);
  const switched = await call(handler, `workspaces/${t.workspaceId}/switch`, {
    method: "POST",
    token: t.member.access_token,
  });
  assert.equal(switched.status, 200);

  t.deps.clock.advanceSeconds(60);
  const renewed = await call(refresh, "refresh", {
    method: "POST",
    token: switched.body.access_token,
  });
  assert.equal(renewed.status, 200);
  assert.equal(claimsOf(renewed.body.access_token).app_metadata.workspace_id, t.workspaceId);

  const rotated = await call(refresh, "refresh", {
    body: { refresh_token: t.member.refresh_token },
  });
  assert.equal(rotated.status, 200);
  const claims = claimsOf(rotated.body.access_token);
  assert.equal(claims.app_metadata.workspace_id, t.workspaceId);
  assert.equal(claims.app_metadata.workspace_role, "member");

  // And back: the personal workspace again, kept by the next rotation too.
  const back = await call(handler, `workspaces/${t.member.personalWorkspaceId}/switch`, {
    method: "POST",
    token: rotated.body.access_token,
  });
  assert.equal(
    claimsOf(back.body.access_token).app_metadata.workspace_id,
    t.member.personalWorkspaceId,
  );
  const again = await call(refresh, "refresh", {
    body: { refresh_token: rotated.body.refresh_token },
  });
  assert.equal(
    claimsOf(again.body.access_token).app_metadata.workspace_id,
    t.member.personalWorkspaceId,
  );
});

dbTest(
  "the switched workspace is what row-level security sees through the token's claims",
  async () => {
    const t = await team();
    await testSql().unsafe(`
    create schema if not exists workspaces_test;
    create table if not exists workspaces_test.note (workspace_id uuid not null, body text not null);
    alter table workspaces_test.note enable row level security;
    drop policy if exists "notes of the current workspace" on workspaces_test.note;
    create policy "notes of the current workspace" on workspaces_test.note
      for select to authenticated
      using (workspace_id = ((select auth.jwt()) -> 'app_metadata' ->> 'workspace_id')::uuid);
    grant usage on schema workspaces_test to authenticated;
    grant select on workspaces_test.note to authenticated;`);
    await testSql()`
    insert into workspaces_test.note (workspace_id, body) values
      (${t.workspaceId}, 'acme'), (${t.member.personalWorkspaceId}, 'personal')`;
    const notes = (token: string) =>
      asRole("authenticated", async (tx) => ({
        uid: (await tx`select auth.uid() as uid`)[0].uid,
        notes: (await tx`select body from workspaces_test.note`).map((r) => r.body),
        members:
          (await tx`select person_id from identity.workspace_member where workspace_id = ${t.workspaceId}`)
            .length,
      }), decodeJwt(token));

    const before = await notes(t.member.access_token);
    assert.deepEqual(before.notes, ["personal"]);
    const switched = await call(createHandler(t.deps), `workspaces/${t.workspaceId}/switch`, {
      method: "POST",
      token: t.member.access_token,
    });
    const after = await notes(switched.body.access_token);
    assert.equal(after.uid, t.member.id);
    assert.deepEqual(after.notes, ["acme"]);
    assert.equal(after.members, 3, "a member reads the workspace's members");
  },
);

dbTest("switch to a workspace that does not exist is 403 NOT_A_MEMBER as well", async () => {
  const t = await team();
  const res = await call(createHandler(t.deps), `workspaces/${crypto.randomUUID()}/switch`, {
    method: "POST",
    token: t.owner.access_token,
  });
  assert.equal(res.status, 403);
  assert.equal(res.body.code, "NOT_A_MEMBER");
});

dbTest(
  "switch refuses an access token the bearer-only refresh would not renew either",
  async () => {
    const t = await team();
    const handler = createHandler(t.deps);
    const refresh = createRefreshHandler(t.deps);
    // The owner rotates: their earlier access token is of an older refresh generation.
    t.deps.clock.advanceSeconds(60);
    const rotated = await call(refresh, "refresh", {
      body: { refresh_token: t.owner.refresh_token },
    });
    assert.equal(rotated.status, 200);
    const before = await workspaceState(t.workspaceId);
    const stale = await call(handler, `workspaces/${t.workspaceId}/switch`, {
      method: "POST",
      token: t.owner.access_token,
    });
    assert.equal(stale.status, 401);
    assert.equal(stale.body.code, "UNAUTHORIZED");
    assert.deepEqual(await workspaceState(t.workspaceId), before);
    // More than 24 h after the last rotation, even the current generation is refused.
    t.deps.clock.advanceSeconds(day);
    const late = await call(handler, `workspaces/${t.workspaceId}/switch`, {
      method: "POST",
      token: rotated.body.access_token,
    });
    assert.equal(late.status, 401);
  },
);

dbTest("every route answers 401 SESSION_REVOKED after logout", async () => {
  const t = await team();
  const handler = createHandler(t.deps);
  assert.equal(
    (await call(createLogoutHandler(t.deps), "logout", {
      method: "POST",
      token: t.owner.access_token,
    }))
      .status,
    200,
  );
  for (const row of Object.values(table)) {
    const { path, method, body } = row.request(t);
    const res = await call(handler, path, { method, body, token: t.owner.access_token });
    assert.equal(res.status, 401, `${method} ${path}`);
    assert.equal(res.body.code, "SESSION_REVOKED");
  }
});

// --- members --------------------------------------------------------------------------------

dbTest("GET members answers each member's id, name, email, role and joining time", async () => {
  const t = await team();
  await testSql()`update identity.person set display_name = 'Ada Admin' where id = ${t.admin.id}`;
  const res = await call(createHandler(t.deps), `workspaces/${t.workspaceId}/members`, {
    token: t.member.access_token,
  });
  assert.equal(res.status, 200);
  const byId = new Map(res.body.members.map((m: { person_id: string }) => [m.person_id, m]));
  assert.equal(byId.size, 3);
  assert.deepEqual(Object.keys(byId.get(t.admin.id) as object).sort(), [
    "display_name",
    "email",
    "joined_at",
    "person_id",
    "role",
  ]);
  assert.deepEqual(
    { ...byId.get(t.admin.id) as object, joined_at: undefined },
    {
      person_id: t.admin.id,
      display_name: "Ada Admin",
      email: t.admin.email,
      role: "admin",
      joined_at: undefined,
    },
  );
  assert.equal((byId.get(t.owner.id) as { role: string }).role, "owner");
  assert.ok(!byId.has(t.outsider.id));
});

/** PATCH a member's role as `caller`. */
function patchRole(t: Team, caller: TestPerson, target: TestPerson, role: string) {
  return call(createHandler(t.deps), `workspaces/${t.workspaceId}/members/${target.id}`, {
    method: "PATCH",
    token: caller.access_token,
    body: { role },
  });
}

async function roleOf(t: Team, person: TestPerson): Promise<string | null> {
  const [row] = await testSql()`
    select role from identity.membership where workspace_id = ${t.workspaceId} and person_id = ${person.id}`;
  return row?.role ?? null;
}

dbTest("PATCH answers the member with the new role", async () => {
  const t = await team();
  const res = await patchRole(t, t.admin, t.member, "admin");
  assert.equal(res.status, 200);
  assert.equal(res.body.person_id, t.member.id);
  assert.equal(res.body.role, "admin");
  assert.equal(res.body.email, t.member.email);
  assert.ok(res.body.joined_at);
  assert.equal(await roleOf(t, t.member), "admin");
});

dbTest("only an owner grants or removes owner; an admin gets 403", async () => {
  const t = await team();
  for (
    const [caller, target, role] of [
      [t.admin, t.member, "owner"],
      [t.admin, t.admin, "owner"],
      [t.admin, t.owner, "admin"],
      [t.admin, t.owner, "member"],
    ] as const
  ) {
    const res = await patchRole(t, caller, target, role);
    assert.equal(res.status, 403, `admin → ${role}`);
    assert.equal(res.body.code, "FORBIDDEN");
  }
  assert.equal(await roleOf(t, t.owner), "owner");
  assert.equal(await roleOf(t, t.member), "member");

  const granted = await patchRole(t, t.owner, t.admin, "owner");
  assert.equal(granted.status, 200);
  assert.equal(await roleOf(t, t.admin), "owner");
  // With two owners, one may demote the other.
  const demoted = await patchRole(t, t.admin, t.owner, "member");
  assert.equal(demoted.status, 200);
  assert.equal(await roleOf(t, t.owner), "member");
});

dbTest("the last owner cannot be demoted: 409 LAST_OWNER", async () => {
  const t = await team();
  for (const role of ["admin", "member"]) {
    const res = await patchRole(t, t.owner, t.owner, role);
    assert.equal(res.status, 409);
    assert.equal(res.body.code, "LAST_OWNER");
  }
  assert.equal(await roleOf(t, t.owner), "owner");
  // Owner to owner is no change, and allowed.
  assert.equal((await patchRole(t, t.owner, t.owner, "owner")).status, 200);
});

dbTest("PATCH of a person who is not a member is 404", async () => {
  const t = await team();
  const res = await patchRole(t, t.owner, t.outsider, "admin");
  assert.equal(res.status, 404);
  assert.equal(res.body.code, "NOT_FOUND");
  assert.equal(await roleOf(t, t.outsider), null);
});

function removeMember(t: Team, caller: TestPerson, target: TestPerson) {
  return call(createHandler(t.deps), `workspaces/${t.workspaceId}/members/${target.id}`, {
    method: "DELETE",
    token: caller.access_token,
  });
}

dbTest(
  "DELETE member: a member removes only themself, an admin no owner, the last owner never",
  async () => {
    const t = await team();
    const memberRemovesAdmin = await removeMember(t, t.member, t.admin);
    assert.equal(memberRemovesAdmin.status, 403);
    assert.equal(memberRemovesAdmin.body.code, "FORBIDDEN");

    const adminRemovesOwner = await removeMember(t, t.admin, t.owner);
    assert.equal(adminRemovesOwner.status, 403);
    assert.equal(adminRemovesOwner.body.code, "FORBIDDEN");

    const lastOwnerLeaves = await removeMember(t, t.owner, t.owner);
    assert.equal(lastOwnerLeaves.status, 409);
    assert.equal(lastOwnerLeaves.body.code, "LAST_OWNER");

    const outsider = await removeMember(t, t.owner, t.outsider);
    assert.equal(outsider.status, 404);
    assert.equal(outsider.body.code, "NOT_FOUND");

    assert.equal(await roleOf(t, t.owner), "owner");
    assert.equal(await roleOf(t, t.admin), "admin");

    const ownerRemovesAdmin = await removeMember(t, t.owner, t.admin);
    assert.equal(ownerRemovesAdmin.status, 204);
    assert.equal(ownerRemovesAdmin.body, null);
    assert.equal(await roleOf(t, t.admin), null);

    // A second owner can leave; then the first is the last again.
    await testSql()`update identity.membership set role = 'owner'
    where workspace_id = ${t.workspaceId} and person_id = ${t.member.id}`;
    assert.equal((await removeMember(t, t.member, t.member)).status, 204);
    assert.equal((await removeMember(t, t.owner, t.owner)).status, 409);
  },
);

dbTest(
  "removal shows at once in me and GET /workspaces, and the next refresh falls back",
  async () => {
    const t = await team();
    const handler = createHandler(t.deps);
    const me = createMeHandler(t.deps);
    const refresh = createRefreshHandler(t.deps);
    const switched = await call(handler, `workspaces/${t.workspaceId}/switch`, {
      method: "POST",
      token: t.member.access_token,
    });
    assert.equal(claimsOf(switched.body.access_token).app_metadata.workspace_id, t.workspaceId);

    assert.equal((await removeMember(t, t.owner, t.member)).status, 204);

    const ids = (body: { workspaces: { id: string }[] }) => body.workspaces.map((w) => w.id);
    const meNow = await call(me, "me", { token: switched.body.access_token });
    assert.deepEqual(ids(meNow.body), [t.member.personalWorkspaceId]);
    const listNow = await call(handler, "workspaces", { token: switched.body.access_token });
    assert.deepEqual(listNow.body.workspaces, [
      {
        id: t.member.personalWorkspaceId,
        name: listNow.body.workspaces[0].name,
        role: "owner",
        current: true,
      },
    ]);
    // The removed member's token still names the workspace, but it answers them nothing.
    const members = await call(handler, `workspaces/${t.workspaceId}/members`, {
      token: switched.body.access_token,
    });
    assert.equal(members.status, 404);

    t.deps.clock.advanceSeconds(60);
    const rotated = await call(refresh, "refresh", {
      body: { refresh_token: t.member.refresh_token },
    });
    assert.equal(rotated.status, 200);
    const claims = claimsOf(rotated.body.access_token);
    assert.equal(claims.app_metadata.workspace_id, t.member.personalWorkspaceId);
    assert.equal(claims.app_metadata.workspace_role, "owner");
    const [session] =
      await testSql()`select workspace_id from identity.session where id = ${claims.session_id}`;
    assert.equal(
      session.workspace_id,
      t.member.personalWorkspaceId,
      "the session remembers the fallback",
    );
  },
);

dbTest("a member who leaves every workspace gets tokens without a workspace", async () => {
  const deps = testDeps();
  const person = await signedInPerson(deps, "leaver");
  const other = await signedInPerson(deps, "other");
  // Ownership of the personal workspace goes to someone else, then the person leaves it.
  await testSql()`insert into identity.membership (workspace_id, person_id, role)
    values (${person.personalWorkspaceId}, ${other.id}, 'owner')`;
  const res = await call(
    createHandler(deps),
    `workspaces/${person.personalWorkspaceId}/members/${person.id}`,
    {
      method: "DELETE",
      token: person.access_token,
    },
  );
  assert.equal(res.status, 204);
  deps.clock.advanceSeconds(60);
  const renewed = await call(createRefreshHandler(deps), "refresh", {
    body: { refresh_token: person.refresh_token },
  });
  assert.equal(renewed.status, 200);
  assert.deepEqual(claimsOf(renewed.body.access_token).app_metadata.workspace_id, undefined);
  const list = await call(createHandler(deps), "workspaces", { token: renewed.body.access_token });
  assert.deepEqual(list.body, { workspaces: [] });
});

// --- invitations ----------------------------------------------------------------------------

function invite(t: Team, options: CallOptions, body: unknown, workspaceId = t.workspaceId) {
  return call(createHandler(t.deps), `workspaces/${workspaceId}/invitations`, {
    method: "POST",
    body,
    ...options,
  });
}

async function outboxOf(invitationId: string) {
  return await testSql()`
    select person_id, to_email, template, status, payload, ready_at from identity.email_outbox
    where invitation_id = ${invitationId} order by created_at, id`;
}

dbTest(
  "an invitation is 201 with its id, email, role and a 7-day expiry, and queues its email",
  async () => {
    const t = await team();
    await testSql()`update identity.person set display_name = 'Olga Owner' where id = ${t.owner.id}`;
    const email = uniqueEmail("Invitee");
    const res = await invite(t, { token: t.owner.access_token }, {
      email: `  ${email.toUpperCase()} `,
      role: "admin",
    });
    assert.equal(res.status, 201);
    assert.deepEqual(Object.keys(res.body).sort(), ["email", "expires_at", "id", "role"]);
    assert.equal(res.body.email, email.toLowerCase());
    assert.equal(res.body.role, "admin");
    assert.equal(Date.parse(res.body.expires_at), t.deps.now().getTime() + 7 * day * 1000);

    const [row] = await testSql()`
    select workspace_id, invited_by, accepted_at from identity.invitation where id = ${res.body.id}`;
    assert.deepEqual(row, {
      workspace_id: t.workspaceId,
      invited_by: t.owner.id,
      accepted_at: null,
    });
    const emails = await outboxOf(res.body.id);
    assert.equal(emails.length, 1);
    assert.equal(emails[0].template, "invitation");
    assert.equal(emails[0].status, "ready");
    assert.equal(emails[0].person_id, null);
    assert.equal(emails[0].to_email, email.toLowerCase());
    assert.ok(emails[0].ready_at);
    assert.deepEqual(emails[0].payload, {
      invitation_id: res.body.id,
      workspace_id: t.workspaceId,
      workspace_name: "Acme",
      inviter_display_name: "Olga Owner",
      role: "admin",
      expires_at: emails[0].payload.expires_at,
    });
    assert.equal(Date.parse(emails[0].payload.expires_at), Date.parse(res.body.expires_at));
  },
);

dbTest(
  "inviting an email with an open invitation renews it: 200, same id, new expiry and email",
  async () => {
    const t = await team();
    const email = uniqueEmail("again");
    const first = await invite(t, { token: t.owner.access_token }, { email, role: "member" });
    assert.equal(first.status, 201);
    t.deps.clock.advanceSeconds(3 * day);
    const admin = await signInAgain(t.deps, t.admin); // a fresh access token, three days on
    const again = await invite(t, { token: admin.access_token }, {
      email: email.toUpperCase(),
      role: "admin",
    });
    assert.equal(again.status, 200);
    assert.equal(again.body.id, first.body.id);
    assert.equal(again.body.role, "admin");
    assert.equal(Date.parse(again.body.expires_at), t.deps.now().getTime() + 7 * day * 1000);
    const [{ n }] = await testSql()`
    select count(*)::int as n from identity.invitation where workspace_id = ${t.workspaceId} and email = ${email}`;
    assert.equal(n, 1);
    // The email still waiting was replaced by the renewal's: one email goes out, with the new expiry.
    let emails = await outboxOf(first.body.id);
    assert.equal(emails.length, 1);
    assert.equal(emails[0].payload.role, "admin");
    assert.equal(Date.parse(emails[0].payload.expires_at), Date.parse(again.body.expires_at));

    // Once an email was sent, a renewal writes a new one.
    await testSql()`update identity.email_outbox set status = 'sent', sent_at = now()
    where invitation_id = ${first.body.id}`;
    t.deps.clock.advanceSeconds(60);
    const third = await invite(t, { apiKey: testSecretKey }, { email, role: "admin" });
    assert.equal(third.status, 200);
    emails = await outboxOf(first.body.id);
    assert.deepEqual(emails.map((e) => e.status), ["sent", "ready"]);
    assert.equal(emails[1].payload.inviter_display_name, null, "a secret key has no display name");
  },
);

dbTest("an expired invitation is not renewed but replaced: 201 with a new id", async () => {
  const t = await team();
  const email = uniqueEmail("late");
  const first = await invite(t, { token: t.owner.access_token }, { email });
  assert.equal(first.status, 201);
  assert.equal(first.body.role, "member", "role defaults to member");
  t.deps.clock.advanceSeconds(7 * day + 1);
  const owner = await signInAgain(t.deps, t.owner); // a fresh access token, a week on
  const list = await call(createHandler(t.deps), `workspaces/${t.workspaceId}/invitations`, {
    token: owner.access_token,
  });
  assert.ok(
    !list.body.invitations.some((i: { id: string }) => i.id === first.body.id),
    "expired is not open",
  );
  const again = await invite(t, { token: owner.access_token }, { email });
  assert.equal(again.status, 201);
  assert.notEqual(again.body.id, first.body.id);
  const [{ n }] =
    await testSql()`select count(*)::int as n from identity.invitation where id = ${first.body.id}`;
  assert.equal(n, 0);
});

dbTest("an admin cannot invite an owner; an owner and the secret key can", async () => {
  const t = await team();
  const before = await workspaceState(t.workspaceId);
  const admin = await invite(t, { token: t.admin.access_token }, {
    email: uniqueEmail(),
    role: "owner",
  });
  assert.equal(admin.status, 403);
  assert.equal(admin.body.code, "FORBIDDEN");
  assert.deepEqual(await workspaceState(t.workspaceId), before);
  assert.equal(
    (await invite(t, { token: t.owner.access_token }, { email: uniqueEmail(), role: "owner" }))
      .status,
    201,
  );
  assert.equal(
    (await invite(t, { apiKey: testSecretKey }, { email: uniqueEmail(), role: "owner" })).status,
    201,
  );
});

dbTest("the secret key invites into an existing workspace only: else 404", async () => {
  const t = await team();
  const res = await invite(
    t,
    { apiKey: testSecretKey },
    { email: uniqueEmail() },
    crypto.randomUUID(),
  );
  assert.equal(res.status, 404);
  assert.equal(res.body.code, "NOT_FOUND");
  const made = await invite(t, { apiKey: testSecretKey }, { email: uniqueEmail(), role: "member" });
  assert.equal(made.status, 201);
  const [row] =
    await testSql()`select invited_by from identity.invitation where id = ${made.body.id}`;
  assert.equal(row.invited_by, null);
});

dbTest("inviting a current member's email is 409 ALREADY_A_MEMBER", async () => {
  const t = await team();
  const before = await workspaceState(t.workspaceId);
  const res = await invite(t, { token: t.owner.access_token }, {
    email: t.member.email.toUpperCase(),
  });
  assert.equal(res.status, 409);
  assert.equal(res.body.code, "ALREADY_A_MEMBER");
  assert.deepEqual(await workspaceState(t.workspaceId), before);
});

dbTest(
  "GET invitations lists only open ones; DELETE revokes one and its waiting email",
  async () => {
    const t = await team();
    const handler = createHandler(t.deps);
    const made = await invite(t, { token: t.owner.access_token }, {
      email: uniqueEmail(),
      role: "admin",
    });
    const list = await call(handler, `workspaces/${t.workspaceId}/invitations`, {
      token: t.admin.access_token,
    });
    assert.equal(list.status, 200);
    const ids = list.body.invitations.map((i: { id: string }) => i.id).sort();
    assert.deepEqual(ids, [t.invitationId, made.body.id].sort());
    const listed = list.body.invitations.find((i: { id: string }) => i.id === made.body.id);
    assert.deepEqual(
      { ...listed, created_at: undefined },
      { ...made.body, invited_by: t.owner.id, created_at: undefined },
    );

    const revoked = await call(handler, `workspaces/${t.workspaceId}/invitations/${made.body.id}`, {
      method: "DELETE",
      token: t.admin.access_token,
    });
    assert.equal(revoked.status, 204);
    assert.equal((await outboxOf(made.body.id)).length, 0, "its email is never sent");
    const [{ n }] =
      await testSql()`select count(*)::int as n from identity.invitation where id = ${made.body.id}`;
    assert.equal(n, 0);
    const twice = await call(handler, `workspaces/${t.workspaceId}/invitations/${made.body.id}`, {
      method: "DELETE",
      token: t.admin.access_token,
    });
    assert.equal(twice.status, 404);
    assert.equal(twice.body.code, "NOT_FOUND");
  },
);

dbTest("an invitation of another workspace cannot be revoked through one's own", async () => {
  const t = await team();
  const other = await team(t.deps);
  const res = await call(
    createHandler(t.deps),
    `workspaces/${t.workspaceId}/invitations/${other.invitationId}`,
    {
      method: "DELETE",
      token: t.owner.access_token,
    },
  );
  assert.equal(res.status, 404);
  const [{ n }] =
    await testSql()`select count(*)::int as n from identity.invitation where id = ${other.invitationId}`;
  assert.equal(n, 1);
});

// --- acceptance -----------------------------------------------------------------------------

dbTest(
  "an existing person's invitation is accepted at refresh, in the one SQL call refresh makes",
  async () => {
    const t = await team();
    const invitee = await signedInPerson(t.deps, "invitee");
    assert.equal(
      (await invite(t, { token: t.owner.access_token }, { email: invitee.email, role: "admin" }))
        .status,
      201,
    );

    const counting = countingSql();
    const deps: Deps = { ...t.deps, sql: counting.sql };
    const refresh = createRefreshHandler(deps);
    t.deps.clock.advanceSeconds(60);
    const res = await call(refresh, "refresh", { body: { refresh_token: invitee.refresh_token } });
    assert.equal(res.status, 200);
    assert.equal(counting.statements.length, 1, counting.statements.join("\n"));
    assert.match(counting.statements[0], /identity\.rotate_refresh_token/);

    const member = await testSql()`
    select role from identity.membership where workspace_id = ${t.workspaceId} and person_id = ${invitee.id}`;
    assert.deepEqual(member.map((m) => m.role), ["admin"]);
    // Accepting does not change the current workspace.
    assert.equal(
      claimsOf(res.body.access_token).app_metadata.workspace_id,
      invitee.personalWorkspaceId,
    );
    const me = await call(createMeHandler(t.deps), "me", { token: res.body.access_token });
    assert.ok(me.body.workspaces.some((w: { id: string }) => w.id === t.workspaceId));
    // Accepted, it is no longer open.
    const list = await call(createHandler(t.deps), `workspaces/${t.workspaceId}/invitations`, {
      token: t.owner.access_token,
    });
    assert.ok(!list.body.invitations.some((i: { email: string }) => i.email === invitee.email));
  },
);

dbTest("the bearer-only refresh accepts invitations too, in one SQL call", async () => {
  const t = await team();
  const invitee = await signedInPerson(t.deps, "invitee");
  await invite(t, { apiKey: testSecretKey }, { email: invitee.email, role: "member" });
  const counting = countingSql();
  const refresh = createRefreshHandler({ ...t.deps, sql: counting.sql });
  const res = await call(refresh, "refresh", { method: "POST", token: invitee.access_token });
  assert.equal(res.status, 200);
  assert.equal(counting.statements.length, 1, counting.statements.join("\n"));
  assert.match(counting.statements[0], /identity\.live_session/);
  const [row] = await testSql()`
    select role from identity.membership where workspace_id = ${t.workspaceId} and person_id = ${invitee.id}`;
  assert.equal(row?.role, "member");
});

dbTest("an existing person's invitation is accepted at their next sign-in", async () => {
  const t = await team();
  const invitee = await signedInPerson(t.deps, "invitee");
  await invite(t, { token: t.owner.access_token }, { email: invitee.email, role: "member" });
  const session = await signInAgain(t.deps, invitee);
  const [row] = await testSql()`
    select role from identity.membership where workspace_id = ${t.workspaceId} and person_id = ${invitee.id}`;
  assert.equal(row?.role, "member");
  assert.equal(
    claimsOf(session.access_token).app_metadata.workspace_id,
    invitee.personalWorkspaceId,
  );
});

dbTest("an expired or revoked invitation is not accepted at refresh", async () => {
  const t = await team();
  const late = await signedInPerson(t.deps, "late");
  const revoked = await signedInPerson(t.deps, "revoked");
  await invite(t, { token: t.owner.access_token }, { email: late.email });
  const made = await invite(t, { token: t.owner.access_token }, { email: revoked.email });
  await call(createHandler(t.deps), `workspaces/${t.workspaceId}/invitations/${made.body.id}`, {
    method: "DELETE",
    token: t.owner.access_token,
  });
  t.deps.clock.advanceSeconds(7 * day + 1);
  const refresh = createRefreshHandler(t.deps);
  for (const person of [late, revoked]) {
    assert.equal(
      (await call(refresh, "refresh", { body: { refresh_token: person.refresh_token } })).status,
      200,
    );
    assert.equal(await roleOf(t, person), null);
  }
});

// --- bad input ------------------------------------------------------------------------------

dbTest(
  "bad input is 400 naming the field (413 for a body over 64 KiB), and writes nothing",
  async () => {
    const t = await team();
    const handler = createHandler(t.deps);
    const token = t.owner.access_token;
    const w = t.workspaceId;
    const cases: [string, CallOptions & { path: string }, number, RegExp][] = [
      [
        "unknown role",
        {
          path: `workspaces/${w}/members/${t.member.id}`,
          method: "PATCH",
          body: { role: "superuser" },
        },
        400,
        /^role /,
      ],
      [
        "missing role",
        { path: `workspaces/${w}/members/${t.member.id}`, method: "PATCH", body: {} },
        400,
        /^role is required/,
      ],
      [
        "role of the wrong type",
        {
          path: `workspaces/${w}/invitations`,
          method: "POST",
          body: { email: uniqueEmail(), role: 1 },
        },
        400,
        /^role /,
      ],
      [
        "unknown invitation role",
        {
          path: `workspaces/${w}/invitations`,
          method: "POST",
          body: { email: uniqueEmail(), role: "Owner" },
        },
        400,
        /^role /,
      ],
      [
        "not an email",
        { path: `workspaces/${w}/invitations`, method: "POST", body: { email: "not-an-email" } },
        400,
        /^email /,
      ],
      [
        "an email with a space",
        { path: `workspaces/${w}/invitations`, method: "POST", body: { email: "a b@example.com" } },
        400,
        /^email /,
      ],
      [
        "an over-long email",
        {
          path: `workspaces/${w}/invitations`,
          method: "POST",
          body: { email: `${"a".repeat(250)}@example.com` },
        },
        400,
        /^email /,
      ],
      [
        "a 60 KiB email",
        {
          path: `workspaces/${w}/invitations`,
          method: "POST",
          body: { email: `${"a".repeat(60 * 1024)}@example.com` },
        },
        400,
        /^email /,
      ],
      [
        "missing email",
        { path: `workspaces/${w}/invitations`, method: "POST", body: { role: "member" } },
        400,
        /^email is required/,
      ],
      [
        "not JSON",
        {
          path: `workspaces/${w}/invitations`,
          method: "POST",
          body: "{",
          headers: { "content-type": "application/json" },
        },
        400,
        /JSON/,
      ],
      [
        "malformed workspace id",
        { path: "workspaces/not-a-uuid/members", method: "GET" },
        400,
        /^id /,
      ],
      [
        "malformed workspace id (switch)",
        { path: "workspaces/1234/switch", method: "POST" },
        400,
        /^id /,
      ],
      [
        "malformed person id",
        { path: `workspaces/${w}/members/x'or'1'='1`, method: "DELETE" },
        400,
        /^person_id /,
      ],
      [
        "malformed invitation id",
        { path: `workspaces/${w}/invitations/${t.invitationId}0`, method: "DELETE" },
        400,
        /^invitation_id /,
      ],
      [
        "a 70 KiB body",
        {
          path: `workspaces/${w}/invitations`,
          method: "POST",
          body: JSON.stringify({ email: uniqueEmail(), pad: "x".repeat(70 * 1024) }),
          headers: { "content-type": "application/json" },
        },
        413,
        /64|bytes/,
      ],
    ];
    const before = await workspaceState(w);
    const [{ invitations: allBefore }] =
      await testSql()`select count(*)::int as invitations from identity.invitation`;
    for (const [name, { path, ...options }, status, message] of cases) {
      const res = await call(handler, path, { token, ...options });
      assert.equal(res.status, status, `${name}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.code, status === 413 ? "PAYLOAD_TOO_LARGE" : "VALIDATION_FAILED", name);
      assert.match(res.body.message, message, name);
    }
    assert.deepEqual(await workspaceState(w), before);
    const [{ invitations: allAfter }] =
      await testSql()`select count(*)::int as invitations from identity.invitation`;
    assert.equal(allAfter, allBefore);
  },
);

dbTest("a JSON body of another content type is 415", async () => {
  const t = await team();
  const res = await call(createHandler(t.deps), `workspaces/${t.workspaceId}/invitations`, {
    method: "POST",
    token: t.owner.access_token,
    body: JSON.stringify({ email: uniqueEmail() }),
    headers: { "content-type": "text/plain" },
  });
  assert.equal(res.status, 415);
});

// --- routing --------------------------------------------------------------------------------

dbTest("unknown sub-paths are 404 and known ones 405 for other methods, with Allow", async () => {
  const t = await team();
  const handler = createHandler(t.deps);
  const token = t.owner.access_token;
  for (
    const path of [
      `workspaces/${t.workspaceId}`,
      `workspaces/${t.workspaceId}/settings`,
      `workspaces/${t.workspaceId}/switch/now`,
      `workspaces/${t.workspaceId}/members/${t.owner.id}/role`,
    ]
  ) {
    const res = await call(handler, path, { token });
    assert.equal(res.status, 404, path);
    assert.equal(res.body.code, "NOT_FOUND");
  }
  const cases: [string, string, string][] = [
    ["workspaces", "POST", "GET"],
    [`workspaces/${t.workspaceId}/switch`, "GET", "POST"],
    [`workspaces/${t.workspaceId}/members`, "DELETE", "GET"],
    [`workspaces/${t.workspaceId}/members/${t.owner.id}`, "GET", "PATCH, DELETE"],
    [`workspaces/${t.workspaceId}/invitations`, "PATCH", "GET, POST"],
    [`workspaces/${t.workspaceId}/invitations/${t.invitationId}`, "PATCH", "DELETE"],
  ];
  for (const [path, method, allow] of cases) {
    const res = await call(handler, path, {
      token,
      method,
      body: method === "GET" ? undefined : {},
    });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.body.code, "METHOD_NOT_ALLOWED");
    assert.equal(res.headers.get("allow"), allow);
  }
  const put = await call(handler, "workspaces", { token, method: "PUT" });
  assert.equal(put.status, 405);
});

dbTest("the function serves the path Supabase hands it and answers CORS preflight", async () => {
  const t = await team();
  const handler = createHandler(t.deps);
  const deployed = await handler(
    new Request(`http://127.0.0.1/workspaces/${t.workspaceId}/members/`, {
      headers: { authorization: `Bearer ${t.member.access_token}` },
    }),
  );
  assert.equal(deployed.status, 200);
  assert.equal((await deployed.json()).members.length, 3);

  const preflight = await handler(
    new Request(`http://127.0.0.1/functions/v1/workspaces/${t.workspaceId}/members/x`, {
      method: "OPTIONS",
    }),
  );
  assert.equal(preflight.status, 204);
  assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /PATCH/);
  assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /DELETE/);
});

dbTest("the local server passes the function's sub-paths through", async () => {
  const t = await team();
  const server = await startLocalServer({ env: testEnv(), sql: testSql() });
  try {
    const res = await fetch(`${server.functionsUrl}/workspaces/${t.workspaceId}/members`, {
      headers: { authorization: `Bearer ${t.member.access_token}`, apikey: testPublishableKey },
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).members.length, 3);
  } finally {
    await server.close();
  }
});

// --- concurrency ----------------------------------------------------------------------------

dbTest("two owners demoting each other at once leave exactly one owner", async () => {
  for (let round = 0; round < 5; round++) {
    const t = await team();
    await testSql()`update identity.membership set role = 'owner'
      where workspace_id = ${t.workspaceId} and person_id = ${t.admin.id}`;
    const [a, b] = await Promise.all([
      patchRole(t, t.owner, t.admin, "member"),
      patchRole(t, t.admin, t.owner, "member"),
    ]);
    const statuses = [a.status, b.status].sort();
    assert.equal(statuses[0], 200, JSON.stringify([a.body, b.body]));
    // The second sees a demoted caller (an admin cannot touch an owner) or one owner left.
    assert.ok([403, 409].includes(statuses[1]), JSON.stringify([a.body, b.body]));
    const [{ owners }] = await testSql()`
      select count(*)::int as owners from identity.membership
      where workspace_id = ${t.workspaceId} and role = 'owner'`;
    assert.equal(owners, 1);
  }
});

dbTest("two owners leaving at once leave exactly one owner", async () => {
  for (let round = 0; round < 5; round++) {
    const t = await team();
    await testSql()`update identity.membership set role = 'owner'
      where workspace_id = ${t.workspaceId} and person_id = ${t.admin.id}`;
    const results = await Promise.all([
      removeMember(t, t.owner, t.owner),
      removeMember(t, t.admin, t.admin),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), [204, 409]);
    const [{ owners }] = await testSql()`
      select count(*)::int as owners from identity.membership
      where workspace_id = ${t.workspaceId} and role = 'owner'`;
    assert.equal(owners, 1);
  }
});

dbTest(
  "20 parallel invitations of one email leave one invitation and one waiting email",
  async () => {
    const t = await team();
    const email = uniqueEmail("crowd");
    const results = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          invite(t, i % 2 ? { apiKey: testSecretKey } : { token: t.owner.access_token }, {
            email: i % 3 ? email : email.toUpperCase(),
            role: "member",
          }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.status).sort(),
      [
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        201,
      ],
    );
    const ids = new Set(results.map((r) => r.body.id));
    assert.equal(ids.size, 1);
    const [{ n }] = await testSql()`
    select count(*)::int as n from identity.invitation where workspace_id = ${t.workspaceId} and email = ${email}`;
    assert.equal(n, 1);
    const emails = await outboxOf([...ids][0]);
    assert.deepEqual(emails.map((e) => e.status), ["ready"]);
  },
);

dbTest("an invitation accepted by concurrent refreshes makes one membership", async () => {
  const t = await team();
  const invitee = await signedInPerson(t.deps, "invitee");
  const second = await signInAgain(t.deps, invitee);
  const third = await signInAgain(t.deps, invitee);
  await invite(t, { token: t.owner.access_token }, { email: invitee.email, role: "admin" });
  const refresh = createRefreshHandler(t.deps);
  const results = await Promise.all([
    call(refresh, "refresh", { body: { refresh_token: invitee.refresh_token } }),
    call(refresh, "refresh", { body: { refresh_token: second.refresh_token } }),
    call(refresh, "refresh", { method: "POST", token: third.access_token }),
  ]);
  assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
  assert.equal(await roleOf(t, invitee), "admin");
});
