import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import type { ProviderIdentity } from "../supabase/functions/_shared/person.ts";
import { signIn, type SignInResult } from "../supabase/functions/_shared/session_store.ts";
import { asRole, dbTest, refused, testSql, uniqueEmail } from "./support/db.ts";
import { TestClock, testDeps } from "./support/deps.ts";
import { identity as anyIdentity } from "./support/person.ts";
import { signInForTest } from "./support/sessions.ts";

// ---------------------------------------------------------------------------------------------
// Provisioning on the Stytch and WorkOS sign-in paths (identity.sign_in), through signIn()
// ---------------------------------------------------------------------------------------------

const clock = new TestClock();

const identity: typeof anyIdentity = (overrides = {}) =>
  anyIdentity({ email: uniqueEmail("signin"), ...overrides });

async function signInAs(
  who: ProviderIdentity,
  signupMode: "open" | "invite" = "open",
): Promise<SignInResult> {
  return await signIn(testSql(), who, { signupMode, now: clock.now() });
}

/** Everything provisioning wrote for a person. */
async function rowsOf(personId: string) {
  const sql = testSql();
  const workspaces = await sql`
    select w.id, w.name, s.locale, s.timezone
    from identity.workspace w
    left join identity.workspace_settings s on s.workspace_id = w.id
    where w.created_by = ${personId}`;
  const memberships = await sql`
    select workspace_id, role from identity.membership where person_id = ${personId}
    order by role = 'owner' desc`;
  const emails = await sql`
    select to_email, template, status, ready_at from identity.email_outbox where person_id = ${personId}`;
  return { workspaces: [...workspaces], memberships: [...memberships], emails: [...emails] };
}

dbTest(
  "a new person signing in gets a workspace, settings, owner membership and a ready welcome email",
  async () => {
    const who = identity();
    const result = await signInAs(who);
    assert.ok(result.ok);
    assert.equal(result.is_new_user, true);

    const rows = await rowsOf(result.person.id);
    assert.equal(rows.workspaces.length, 1);
    const [workspace] = rows.workspaces;
    assert.equal(workspace.name, who.email!.split("@")[0]);
    assert.deepEqual([workspace.locale, workspace.timezone], ["en", "UTC"]);
    assert.deepEqual(rows.memberships, [{ workspace_id: workspace.id, role: "owner" }]);
    assert.equal(rows.emails.length, 1);
    assert.equal(rows.emails[0].status, "ready");
    assert.equal(rows.emails[0].template, "welcome");
    assert.equal(rows.emails[0].to_email, who.email);
    assert.ok(rows.emails[0].ready_at instanceof Date);
    assert.deepEqual(
      [result.claims.workspace_id, result.claims.workspace_role],
      [workspace.id, "owner"],
    );
  },
);

dbTest("the very first access token carries workspace_id and workspace_role", async () => {
  const deps = testDeps();
  const tokens = await signInForTest(deps, { provider: "workos" });
  const claims = decodeJwt(tokens.access_token);
  const rows = await rowsOf(tokens.person.id);
  assert.deepEqual(claims.app_metadata, {
    provider: "workos",
    providers: ["workos"],
    workspace_id: rows.workspaces[0].id,
    workspace_role: "owner",
  });
});

dbTest("the workspace is named after the provider's display name when there is one", async () => {
  const result = await signInAs(identity({ provider: "workos", displayName: "Ada Lovelace" }));
  assert.ok(result.ok);
  const rows = await rowsOf(result.person.id);
  assert.equal(rows.workspaces[0].name, "Ada Lovelace");
});

dbTest("signing in again provisions nothing more", async () => {
  const who = identity();
  const first = await signInAs(who);
  const second = await signInAs(who);
  assert.ok(first.ok && second.ok);
  assert.equal(second.is_new_user, false);
  assert.equal(second.person.id, first.person.id);
  const rows = await rowsOf(first.person.id);
  assert.equal(rows.workspaces.length, 1);
  assert.equal(rows.memberships.length, 1);
  assert.equal(rows.emails.length, 1);
  assert.equal(second.claims.workspace_id, first.claims.workspace_id);
});

dbTest(
  "20 concurrent first sign-ins of one email provision one workspace and one email",
  async () => {
    const who = identity();
    const results = await Promise.all(Array.from({ length: 20 }, () => signInAs(who)));
    const ids = new Set(results.map((r) => r.ok ? r.person.id : r.error));
    assert.equal(ids.size, 1);
    const [personId] = ids;
    assert.equal(results.filter((r) => r.ok && r.is_new_user).length, 1);
    const rows = await rowsOf(personId);
    assert.equal(rows.workspaces.length, 1);
    assert.equal(rows.emails.length, 1);
    for (const result of results) {
      assert.ok(result.ok);
      assert.equal(result.claims.workspace_id, rows.workspaces[0].id);
    }
  },
);

dbTest(
  "a person whose email the provider did not verify gets a workspace but no email",
  async () => {
    const result = await signInAs(
      identity({ provider: "workos", emailVerified: false, displayName: null }),
    );
    assert.ok(result.ok);
    const rows = await rowsOf(result.person.id);
    assert.equal(result.person.email, null);
    assert.equal(rows.workspaces.length, 1);
    assert.equal(rows.workspaces[0].name, "Personal workspace");
    assert.deepEqual(rows.emails, []);
  },
);

// ---------------------------------------------------------------------------------------------
// Invitations and invite-only signups on the sign-in paths
// ---------------------------------------------------------------------------------------------

/** A workspace someone owns, and an invitation into it for `email`. */
async function invite(email: string, role: "admin" | "member" = "member") {
  const inviter = await signInAs(identity());
  assert.ok(inviter.ok);
  const workspaceId = inviter.claims.workspace_id!;
  const [invitation] = await testSql()`
    insert into identity.invitation (email, workspace_id, role, invited_by)
    values (${email}, ${workspaceId}, ${role}, ${inviter.person.id})
    returning id`;
  return { workspaceId, invitationId: invitation.id as string };
}

dbTest(
  "invite mode refuses a new person without an open invitation and writes nothing",
  async () => {
    const who = identity();
    const result = await signInAs(who, "invite");
    assert.deepEqual(result, { ok: false, error: "SIGNUP_DISABLED" });
    const people = await testSql()`
    select id from identity.person where stytch_user_id = ${who.providerUserId}`;
    assert.equal(people.length, 0);
  },
);

dbTest(
  "invite mode: an invited email (any case) signs up, accepts the invitation and joins its workspace",
  async () => {
    const email = uniqueEmail("invitee");
    const { workspaceId, invitationId } = await invite(email.toUpperCase(), "admin");

    const result = await signInAs(identity({ email }), "invite");

    assert.ok(result.ok);
    const rows = await rowsOf(result.person.id);
    assert.deepEqual(rows.memberships, [
      { workspace_id: rows.workspaces[0].id, role: "owner" },
      { workspace_id: workspaceId, role: "admin" },
    ]);
    const [invitation] = await testSql()`
      select accepted_at from identity.invitation where id = ${invitationId}`;
    assert.ok(invitation.accepted_at instanceof Date);
    // The token's workspace is the person's own one.
    assert.equal(result.claims.workspace_id, rows.workspaces[0].id);
  },
);

dbTest("an open invitation is accepted on sign-up in open mode too", async () => {
  const email = uniqueEmail("invitee");
  const { workspaceId } = await invite(email);
  const result = await signInAs(identity({ email, provider: "workos" }));
  assert.ok(result.ok);
  const rows = await rowsOf(result.person.id);
  assert.deepEqual(rows.memberships.map((m) => [m.workspace_id, m.role]).slice(1), [
    [workspaceId, "member"],
  ]);
});

dbTest("invite mode still lets an existing person sign in", async () => {
  const who = identity();
  assert.ok((await signInAs(who, "open")).ok);
  const result = await signInAs(who, "invite");
  assert.ok(result.ok);
  assert.equal(result.is_new_user, false);
});

dbTest("an expired invitation lets nobody in and joins no workspace", async () => {
  const email = uniqueEmail("late");
  const { workspaceId } = await invite(email);
  await testSql()`
    update identity.invitation set expires_at = now() - interval '1 second'
    where workspace_id = ${workspaceId}`;
  assert.deepEqual(await signInAs(identity({ email }), "invite"), {
    ok: false,
    error: "SIGNUP_DISABLED",
  });
  const result = await signInAs(identity({ email }), "open");
  assert.ok(result.ok);
  assert.deepEqual((await rowsOf(result.person.id)).memberships.map((m) => m.role), ["owner"]);
});

// ---------------------------------------------------------------------------------------------
// Custom access token hook (identity.custom_access_token_hook), as Supabase Auth calls it
// ---------------------------------------------------------------------------------------------

/** The event Supabase Auth sends: {user_id, claims, authentication_method}. */
function tokenHookEvent(userId: string, appMetadata: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    user_id: userId,
    claims: {
      aud: "authenticated",
      exp: now + 3600,
      iat: now,
      iss: "http://127.0.0.1:54321/auth/v1",
      sub: userId,
      email: "person@example.test",
      phone: "",
      app_metadata: { provider: "email", providers: ["email"], ...appMetadata },
      user_metadata: { full_name: "Someone" },
      role: "authenticated",
      aal: "aal1",
      amr: [{ method: "password", timestamp: now }],
      session_id: crypto.randomUUID(),
      is_anonymous: false,
    },
    authentication_method: "password",
  };
}

async function callTokenHook(event: unknown, role = "supabase_auth_admin") {
  return await asRole(role, async (tx) => {
    const [{ result }] = await tx`
      select identity.custom_access_token_hook(${tx.json(event as never)}::jsonb) as result`;
    return result;
  });
}

dbTest(
  "the access token hook adds the workspace of a provisioned user to app_metadata",
  async () => {
    const result = await signInAs(identity());
    assert.ok(result.ok);
    const event = tokenHookEvent(result.person.id);

    const answer = await callTokenHook(event);

    assert.deepEqual(answer, {
      claims: {
        ...event.claims,
        app_metadata: {
          provider: "email",
          providers: ["email"],
          workspace_id: result.claims.workspace_id,
          workspace_role: "owner",
        },
      },
    });
  },
);

dbTest(
  "the access token hook returns valid claims unchanged for an unprovisioned user",
  async () => {
    const event = tokenHookEvent(crypto.randomUUID());
    assert.deepEqual(await callTokenHook(event), { claims: event.claims });
  },
);

dbTest("the access token hook drops a stale workspace from app_metadata", async () => {
  const event = tokenHookEvent(crypto.randomUUID(), {
    workspace_id: crypto.randomUUID(),
    workspace_role: "owner",
  });
  const answer = await callTokenHook(event);
  assert.deepEqual(answer.claims.app_metadata, { provider: "email", providers: ["email"] });
});

dbTest("only supabase_auth_admin may run the access token hook", async () => {
  const event = tokenHookEvent(crypto.randomUUID());
  for (const role of ["anon", "authenticated"]) {
    await assert.rejects(() => callTokenHook(event, role), (error: { code?: string }) => {
      assert.equal(error.code, "42501"); // insufficient_privilege
      return true;
    });
  }
});

dbTest(
  "supabase_auth_admin reads memberships for the hook and nothing else of identity",
  async () => {
    await signInAs(identity());
    const denied = await asRole("supabase_auth_admin", async (tx) => {
      const denied: string[] = [];
      for (const table of ["identity.person", "identity.workspace", "identity.email_outbox"]) {
        if (await refused(tx, `select 1 from ${table} limit 1`)) denied.push(table);
      }
      const [{ count }] = await tx`select count(*)::int as count from identity.membership`;
      return { refused: denied, count };
    });
    assert.deepEqual(denied.refused, [
      "identity.person",
      "identity.workspace",
      "identity.email_outbox",
    ]);
    assert.ok(denied.count > 0, "memberships are readable through the policy");
  },
);
