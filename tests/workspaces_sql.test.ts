/**
 * Workspaces in the database (SPEC §10): the access token hook's current-workspace rule for
 * Supabase Auth users, what `authenticated` may read about fellow members through PostgREST, the
 * outbox and invitation constraints, and a deleted workspace's sessions.
 */
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { createHandler as createRefreshHandler } from "../supabase/functions/refresh/handler.ts";
import { createHandler } from "../supabase/functions/workspaces/handler.ts";
import { asRole, dbTest, refused, testSql, uniqueEmail } from "./support/db.ts";
import { call } from "./support/http.ts";
import { type Team, team } from "./support/workspaces.ts";

// --- the access token hook --------------------------------------------------------------------

/** The event Supabase Auth sends the hook, with `appMetadata` as the user's raw_app_meta_data. */
function tokenHookEvent(userId: string, appMetadata: Record<string, unknown>) {
  const now = Math.floor(Date.now() / 1000);
  return {
    user_id: userId,
    claims: {
      aud: "authenticated",
      exp: now + 3600,
      iat: now,
      sub: userId,
      role: "authenticated",
      app_metadata: { provider: "email", providers: ["email"], ...appMetadata },
      user_metadata: {},
    },
    authentication_method: "password",
  };
}

async function hookWorkspace(userId: string, appMetadata: Record<string, unknown>) {
  const answer = await asRole("supabase_auth_admin", async (tx) => {
    const [{ result }] = await tx`
      select identity.custom_access_token_hook(${
      tx.json(tokenHookEvent(userId, appMetadata) as never)
    }::jsonb) as result`;
    return result;
  });
  const { workspace_id, workspace_role } = answer.claims.app_metadata;
  return { workspace_id, workspace_role };
}

dbTest(
  "the token hook honours app metadata's workspace_id while the user is a member of it",
  async () => {
    const t = await team();
    assert.deepEqual(await hookWorkspace(t.member.id, { workspace_id: t.workspaceId }), {
      workspace_id: t.workspaceId,
      workspace_role: "member",
    });
    // A stale role in app metadata is replaced by the membership's.
    assert.deepEqual(
      await hookWorkspace(t.admin.id, { workspace_id: t.workspaceId, workspace_role: "owner" }),
      { workspace_id: t.workspaceId, workspace_role: "admin" },
    );
  },
);

dbTest(
  "the token hook falls back to the owned workspace when app metadata's is not theirs",
  async () => {
    const t = await team();
    const personal = { workspace_id: t.member.personalWorkspaceId, workspace_role: "owner" };
    for (
      const appMetadata of [
        {},
        { workspace_id: t.outsider.personalWorkspaceId }, // someone else's
        { workspace_id: crypto.randomUUID() }, // no such workspace
        { workspace_id: "not-a-uuid" },
        { workspace_id: 42 },
        { workspace_id: null },
      ]
    ) {
      assert.deepEqual(
        await hookWorkspace(t.member.id, appMetadata),
        personal,
        JSON.stringify(appMetadata),
      );
    }
    // Removed from the workspace app metadata still names: the next token falls back.
    await testSql()`delete from identity.membership
    where workspace_id = ${t.workspaceId} and person_id = ${t.member.id}`;
    assert.deepEqual(await hookWorkspace(t.member.id, { workspace_id: t.workspaceId }), personal);
  },
);

// --- what authenticated may read ---------------------------------------------------------------

function readAs(
  person: { access_token: string },
  statement: (tx: ReturnType<typeof testSql>) => Promise<unknown>,
) {
  return asRole("authenticated", statement, decodeJwt(person.access_token));
}

dbTest(
  "a member reads the ids, names and emails of their workspaces' members, nothing more",
  async () => {
    const t = await team();
    const other = await team(t.deps);
    await testSql()`update identity.person set display_name = 'Ada', phone = null where id = ${t.admin.id}`;
    const seen = await readAs(t.member, async (tx) => ({
      rows: await tx`select * from identity.workspace_member order by workspace_id, person_id`,
      columns: (await tx`
      select column_name from information_schema.columns
      where table_schema = 'identity' and table_name = 'workspace_member' order by ordinal_position`)
        .map((r) => r.column_name),
    })) as { rows: Record<string, unknown>[]; columns: string[] };
    assert.deepEqual(seen.columns, ["workspace_id", "person_id", "display_name", "email"]);
    const acme = seen.rows.filter((r) => r.workspace_id === t.workspaceId);
    assert.deepEqual(
      acme.map((r) => r.person_id).sort(),
      [t.owner.id, t.admin.id, t.member.id].sort(),
    );
    assert.deepEqual(acme.find((r) => r.person_id === t.admin.id), {
      workspace_id: t.workspaceId,
      person_id: t.admin.id,
      display_name: "Ada",
      email: t.admin.email,
    });
    // Their own personal workspace (themself only), and nothing of the other team or the outsider.
    const workspaces = new Set(seen.rows.map((r) => r.workspace_id));
    assert.deepEqual([...workspaces].sort(), [t.workspaceId, t.member.personalWorkspaceId].sort());
    for (const stranger of [t.outsider, other.owner, other.admin, other.member]) {
      assert.ok(!seen.rows.some((r) => r.person_id === stranger.id));
    }
  },
);

/** The SQLSTATE `statement` fails with, inside a savepoint, or null when it succeeds. */
async function sqlState(tx: ReturnType<typeof testSql>, statement: string): Promise<string | null> {
  try {
    await (tx as unknown as {
      savepoint: (fn: (sp: typeof tx) => Promise<unknown>) => Promise<unknown>;
    })
      .savepoint((sp) => sp.unsafe(statement));
    return null;
  } catch (error) {
    return (error as { code?: string }).code ?? "unknown";
  }
}

dbTest("fellow members' person rows, and a workspace's invitations, stay invisible", async () => {
  const t = await team();
  const seen = await readAs(t.member, async (tx) => ({
    people: (await tx`select id from identity.person`).map((r) => r.id),
    memberships:
      (await tx`select person_id from identity.membership where workspace_id = ${t.workspaceId}`)
        .map((r) => r.person_id),
    invitations: await refused(tx, "select * from identity.invitation"),
    outbox: await refused(tx, "select * from identity.email_outbox"),
    // Not writable: no grant, and a join view is not updatable anyway.
    writeView: await sqlState(tx, "delete from identity.workspace_member"),
  }));
  assert.deepEqual(seen, {
    people: [t.member.id],
    memberships: [t.member.id],
    invitations: true,
    outbox: true,
    writeView: "55000", // object_not_in_prerequisite_state: cannot delete from view
  });
});

dbTest("the members view shows nothing to anon, or to a removed member", async () => {
  const t = await team();
  const anon = await asRole(
    "anon",
    (tx) => refused(tx, "select * from identity.workspace_member"),
    {
      role: "anon",
    },
  );
  assert.ok(anon);
  await testSql()`delete from identity.membership
    where workspace_id = ${t.workspaceId} and person_id = ${t.member.id}`;
  const rows = await readAs(
    t.member,
    (tx) =>
      tx`select person_id from identity.workspace_member where workspace_id = ${t.workspaceId}`,
  ) as unknown[];
  assert.deepEqual(rows.length, 0);
  // A caller's own WHERE function cannot see rows before the view's filter (security_barrier).
  const [{ options }] = await testSql()`
    select reloptions as options from pg_class where oid = 'identity.workspace_member'::regclass`;
  assert.ok((options as string[]).includes("security_barrier=true"));
});

// --- constraints ------------------------------------------------------------------------------

dbTest("one open invitation per workspace and email, whatever the case of the email", async () => {
  const t = await team();
  const email = uniqueEmail("twice");
  await testSql()`insert into identity.invitation (email, workspace_id) values (${email}, ${t.workspaceId})`;
  await assert.rejects(
    () =>
      testSql()`insert into identity.invitation (email, workspace_id) values (${email.toUpperCase()}, ${t.workspaceId})`,
    (error: { code?: string }) => error.code === "23505",
  );
  // An accepted one does not count, and invitations made by hand are open for 7 days.
  await testSql()`update identity.invitation set accepted_at = now() where email = ${email}`;
  const [row] = await testSql()`
    insert into identity.invitation (email, workspace_id) values (${email}, ${t.workspaceId})
    returning expires_at - created_at as ttl`;
  assert.equal(row.ttl, "7 days");
});

dbTest(
  "the welcome email stays one per person; invitation emails belong to no person",
  async () => {
    const t = await team();
    await assert.rejects(
      () =>
        testSql()`insert into identity.email_outbox (person_id, to_email, template, status)
      values (null, ${uniqueEmail()}, 'welcome', 'ready')`,
      (error: { code?: string }) => error.code === "23514",
    );
    const [{ n }] = await testSql()`
    select count(*)::int as n from identity.email_outbox where person_id = ${t.owner.id} and template = 'welcome'`;
    assert.equal(n, 1);
    await testSql()`select identity.provision_person(${t.owner.id}, ${t.owner.email}, true, 'x', now())`;
    const [{ again }] = await testSql()`
    select count(*)::int as again from identity.email_outbox where person_id = ${t.owner.id} and template = 'welcome'`;
    assert.equal(again, 1);
  },
);

dbTest("invitation_ttl_seconds is 7 days and the earlier policy names are kept", async () => {
  const [row] = await testSql()`
    select identity.policy('invitation_ttl_seconds') as ttl,
      identity.policy('otp_attempts_per_code_all_ips') as per_code,
      identity.policy('bearer_renewal_seconds') as bearer`;
  assert.deepEqual(row, { ttl: 7 * 86_400, per_code: 20, bearer: 86_400 });
});

// --- sessions ---------------------------------------------------------------------------------

async function switchTo(t: Team, workspaceId: string) {
  const res = await call(createHandler(t.deps), `workspaces/${workspaceId}/switch`, {
    method: "POST",
    token: t.member.access_token,
  });
  assert.equal(res.status, 200);
  return res.body;
}

dbTest("a deleted workspace's sessions fall back at their next refresh", async () => {
  const t = await team();
  const switched = await switchTo(t, t.workspaceId);
  const sessionId = decodeJwt(switched.access_token).session_id as string;
  await testSql()`delete from identity.workspace where id = ${t.workspaceId}`;
  const [row] = await testSql()`select workspace_id from identity.session where id = ${sessionId}`;
  assert.equal(row.workspace_id, null);
  t.deps.clock.advanceSeconds(60);
  const res = await call(createRefreshHandler(t.deps), "refresh", {
    body: { refresh_token: t.member.refresh_token },
  });
  assert.equal(res.status, 200);
  const claims = decodeJwt(res.body.access_token) as { app_metadata: { workspace_id: string } };
  assert.equal(claims.app_metadata.workspace_id, t.member.personalWorkspaceId);
});

dbTest("a session opened at sign-in starts in the owned workspace, invited or not", async () => {
  const t = await team();
  const [row] = await testSql()`
    select s.workspace_id from identity.session s
    where s.id = ${decodeJwt(t.member.access_token).session_id as string}`;
  assert.equal(row.workspace_id, t.member.personalWorkspaceId);
});
