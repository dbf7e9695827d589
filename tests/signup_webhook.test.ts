import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import type { Env } from "../supabase/functions/_shared/config.ts";
import { createStandardWebhookVerifier } from "../supabase/functions/_shared/signatures.ts";
import { createHandler } from "../supabase/functions/signup-webhook/handler.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { TestClock, testDeps } from "./support/deps.ts";
import { call, type CallResult } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures: deliveries as Supabase Auth hooks and the database webhook send them, signed here.
// ---------------------------------------------------------------------------------------------

const encoder = new TextEncoder();

function randomSecret(): string {
  return `v1,whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
}

const hookSecret = randomSecret();
const rotatedSecret = randomSecret();
const webhookToken = `test-signup-webhook-token-${crypto.randomUUID()}`;
const webhookEnv: Env = {
  SIGNUP_HOOK_SECRET: `${hookSecret}|${rotatedSecret}`,
  SIGNUP_WEBHOOK_TOKEN: webhookToken,
};

type Json = Record<string, unknown>;

function setup(env: Env = {}) {
  const deps = testDeps({ env: { ...webhookEnv, ...env }, clock: new TestClock() });
  return { deps, handler: createHandler(deps) };
}

/** `v1,<base64 HMAC-SHA256 of "${id}.${timestamp}.${body}">` under a `v1,whsec_…` secret. */
async function standardSignature(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): Promise<string> {
  const keyBytes = Uint8Array.from(atob(secret.replace(/^v1,whsec_/, "")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey(
    "raw",
    keyBytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestamp}.${body}`));
  return `v1,${btoa(String.fromCharCode(...new Uint8Array(mac)))}`;
}

/** The headers Supabase Auth sends with a hook, signed at `at` (the test clock's now). */
async function signedHeaders(
  body: string,
  at: Date,
  options: { secret?: string; id?: string } = {},
): Promise<Record<string, string>> {
  const id = options.id ?? `msg_${crypto.randomUUID()}`;
  const timestamp = Math.floor(at.getTime() / 1000);
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await standardSignature(
      options.secret ?? hookSecret,
      id,
      timestamp,
      body,
    ),
  };
}

/** Sends a hook delivery signed with the hook secret. */
async function sendHook(
  handler: ReturnType<typeof createHandler>,
  clock: TestClock,
  payload: Json,
): Promise<CallResult> {
  const body = JSON.stringify(payload);
  return await call(handler, "signup-webhook", {
    body,
    headers: await signedHeaders(body, clock.now()),
  });
}

/** Sends a database-webhook delivery with the bearer token, as the auth.users trigger does. */
async function sendDatabaseEvent(
  handler: ReturnType<typeof createHandler>,
  payload: Json,
): Promise<CallResult> {
  return await call(handler, "signup-webhook", {
    body: JSON.stringify(payload),
    token: webhookToken,
  });
}

interface AuthUser {
  id: string;
  email: string;
  /** The whole auth.users row, as a database webhook sends it. */
  row: Json;
}

/** A Supabase Auth user, inserted as Supabase Auth inserts it (unconfirmed unless told). */
async function insertAuthUser(
  options: { email?: string; fullName?: string; confirmed?: boolean } = {},
): Promise<AuthUser> {
  const email = options.email ?? uniqueEmail("supa");
  const userMetadata = options.fullName ? { full_name: options.fullName } : {};
  const [row] = await testSql()`
    insert into auth.users (aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
    values (
      'authenticated', 'authenticated', ${email},
      ${options.confirmed ? new Date() : null},
      ${testSql().json({ provider: "email", providers: ["email"] })},
      ${testSql().json(userMetadata)}
    )
    returning to_jsonb(users.*) as row`;
  return { id: row.row.id, email, row: row.row };
}

/** Confirms the user's email as Supabase Auth does; returns the row before and after. */
async function confirmEmail(user: AuthUser): Promise<{ old: Json; row: Json }> {
  const [row] = await testSql()`
    update auth.users set email_confirmed_at = now(), updated_at = now()
    where id = ${user.id}
    returning to_jsonb(users.*) as row`;
  return { old: user.row, row: row.row };
}

function insertEvent(record: Json): Json {
  return { type: "INSERT", table: "users", schema: "auth", record, old_record: null };
}

function updateEvent(record: Json, oldRecord: Json): Json {
  return { type: "UPDATE", table: "users", schema: "auth", record, old_record: oldRecord };
}

function hookMetadata(name: string): Json {
  return {
    uuid: crypto.randomUUID(),
    time: new Date().toISOString(),
    name,
    ip_address: "127.0.0.1",
  };
}

/** The after-user-created hook's payload for a user (the shape of Supabase Auth's models.User). */
function afterUserCreated(user: AuthUser): Json {
  return {
    metadata: hookMetadata("after-user-created"),
    user: {
      id: user.id,
      aud: "authenticated",
      role: "authenticated",
      email: user.email,
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: {},
      identities: [],
      created_at: new Date().toISOString(),
      updated_at: new Date().toISOString(),
      is_anonymous: false,
    },
  };
}

/** The before-user-created hook's payload: the user does not exist yet. */
function beforeUserCreated(email: string): Json {
  return {
    metadata: hookMetadata("before-user-created"),
    user: {
      id: crypto.randomUUID(),
      aud: "authenticated",
      role: "",
      email,
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: {},
      identities: [],
      created_at: "0001-01-01T00:00:00Z",
      updated_at: "0001-01-01T00:00:00Z",
      is_anonymous: false,
    },
  };
}

/** Every row provisioning writes for a user, counted and read. */
async function provisioned(userId: string) {
  const sql = testSql();
  const people =
    await sql`select id, email, display_name from identity.person where id = ${userId}`;
  const workspaces = await sql`
    select w.id, w.name, s.locale, s.timezone, s.settings
    from identity.workspace w
    left join identity.workspace_settings s on s.workspace_id = w.id
    where w.created_by = ${userId}`;
  const memberships = await sql`
    select workspace_id, role from identity.membership where person_id = ${userId}
    order by created_at`;
  const emails = await sql`
    select to_email, template, status, ready_at from identity.email_outbox where person_id = ${userId}`;
  const [user] = await sql`
    select raw_app_meta_data, raw_user_meta_data from auth.users where id = ${userId}`;
  // Plain arrays: postgres.js results are arrays of another prototype, which deepEqual tells apart.
  return {
    people: [...people],
    workspaces: [...workspaces],
    memberships: [...memberships],
    emails: [...emails],
    appMetadata: user?.raw_app_meta_data,
    userMetadata: user?.raw_user_meta_data,
  };
}

/** Asserts the complete, consistent end state of one provisioned user. */
async function assertProvisionedOnce(
  user: AuthUser,
  expected: { emailStatus: "awaiting_confirmation" | "ready" },
) {
  const rows = await provisioned(user.id);
  assert.equal(rows.people.length, 1, "one person");
  assert.equal(rows.workspaces.length, 1, "one workspace");
  const [workspace] = rows.workspaces;
  assert.deepEqual(
    { locale: workspace.locale, timezone: workspace.timezone, settings: workspace.settings },
    { locale: "en", timezone: "UTC", settings: {} },
    "default settings",
  );
  assert.deepEqual(rows.memberships, [{ workspace_id: workspace.id, role: "owner" }]);
  assert.equal(rows.emails.length, 1, "one welcome email");
  assert.equal(rows.emails[0].template, "welcome");
  assert.equal(rows.emails[0].to_email, user.email);
  assert.equal(rows.emails[0].status, expected.emailStatus);
  assert.deepEqual(rows.appMetadata, {
    provider: "email",
    providers: ["email"],
    workspace_id: workspace.id,
    workspace_role: "owner",
  });
  return { ...rows, workspace };
}

async function assertNothingWritten(userId: string) {
  const rows = await provisioned(userId);
  assert.equal(rows.people.length, 0);
  assert.equal(rows.workspaces.length, 0);
  assert.equal(rows.emails.length, 0);
  assert.equal(rows.appMetadata.workspace_id, undefined);
}

// ---------------------------------------------------------------------------------------------
// Provisioning through the webhook
// ---------------------------------------------------------------------------------------------

dbTest(
  "database INSERT provisions the person, workspace, settings, owner membership, welcome email and app metadata",
  async () => {
    const { handler } = setup();
    const user = await insertAuthUser({ fullName: "Ada Lovelace" });

    const res = await sendDatabaseEvent(handler, insertEvent(user.row));

    assert.equal(res.status, 200);
    const rows = await assertProvisionedOnce(user, { emailStatus: "awaiting_confirmation" });
    assert.deepEqual(res.body, { person_id: user.id, workspace_id: rows.workspace.id });
    assert.equal(rows.workspace.name, "Ada Lovelace");
    assert.equal(rows.emails[0].ready_at, null);
    // Unconfirmed: the person does not hold the address yet; user metadata is never written.
    assert.deepEqual(rows.people[0], { id: user.id, email: null, display_name: "Ada Lovelace" });
    assert.deepEqual(rows.userMetadata, { full_name: "Ada Lovelace" });
    assert.ok(res.headers.get("x-request-id"));
  },
);

dbTest("a signed after-user-created hook provisions like the database INSERT", async () => {
  const { handler, deps } = setup();
  const user = await insertAuthUser();

  const res = await sendHook(handler, deps.clock, afterUserCreated(user));

  assert.equal(res.status, 200);
  const rows = await assertProvisionedOnce(user, { emailStatus: "awaiting_confirmation" });
  assert.deepEqual(res.body, { person_id: user.id, workspace_id: rows.workspace.id });
  // No full_name: the workspace is named after the email's local part.
  assert.equal(rows.workspace.name, user.email.split("@")[0]);
});

dbTest(
  "the same delivery three times, plus the hook for the same user, still gives one of each",
  async () => {
    const { handler, deps } = setup();
    const user = await insertAuthUser({ fullName: "Grace Hopper" });
    const delivery = insertEvent(user.row);

    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await sendDatabaseEvent(handler, delivery));
    answers.push(await sendHook(handler, deps.clock, afterUserCreated(user)));

    const rows = await assertProvisionedOnce(user, { emailStatus: "awaiting_confirmation" });
    for (const res of answers) {
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { person_id: user.id, workspace_id: rows.workspace.id });
    }
  },
);

dbTest("concurrent deliveries for one user give one of each", async () => {
  const { handler, deps } = setup();
  const user = await insertAuthUser();
  const answers = await Promise.all([
    ...Array.from({ length: 4 }, () => sendDatabaseEvent(handler, insertEvent(user.row))),
    sendHook(handler, deps.clock, afterUserCreated(user)),
  ]);
  assert.deepEqual(answers.map((res) => res.status), [200, 200, 200, 200, 200]);
  await assertProvisionedOnce(user, { emailStatus: "awaiting_confirmation" });
});

dbTest("an UPDATE confirming the email makes the welcome email ready, once", async () => {
  const { handler } = setup();
  const user = await insertAuthUser();
  await sendDatabaseEvent(handler, insertEvent(user.row));
  const { old, row } = await confirmEmail(user);

  const first = await sendDatabaseEvent(handler, updateEvent(row, old));
  const afterFirst = await assertProvisionedOnce(user, { emailStatus: "ready" });
  const second = await sendDatabaseEvent(handler, updateEvent(row, old));
  const afterSecond = await assertProvisionedOnce(user, { emailStatus: "ready" });

  assert.equal(first.status, 200);
  assert.equal(second.status, 200);
  assert.deepEqual(first.body, { person_id: user.id, workspace_id: afterFirst.workspace.id });
  assert.ok(afterFirst.emails[0].ready_at instanceof Date);
  assert.deepEqual(afterSecond.emails[0].ready_at, afterFirst.emails[0].ready_at);
  // Confirmed: now the person holds the address.
  assert.equal(afterSecond.people[0].email, user.email);
});

dbTest("out of order: an UPDATE before the INSERT still ends complete and consistent", async () => {
  const { handler } = setup();
  const user = await insertAuthUser({ fullName: "Katherine Johnson" });
  const { old, row } = await confirmEmail(user);

  const update = await sendDatabaseEvent(handler, updateEvent(row, old));
  const afterUpdate = await assertProvisionedOnce(user, { emailStatus: "ready" });
  const insert = await sendDatabaseEvent(handler, insertEvent(user.row)); // stale: unconfirmed
  const afterInsert = await assertProvisionedOnce(user, { emailStatus: "ready" });

  assert.equal(update.status, 200);
  assert.equal(insert.status, 200);
  assert.deepEqual(update.body, { person_id: user.id, workspace_id: afterUpdate.workspace.id });
  assert.deepEqual(insert.body, update.body);
  assert.equal(afterInsert.workspace.name, "Katherine Johnson");
  assert.equal(afterInsert.people[0].email, user.email);
  assert.deepEqual(afterInsert.emails[0].ready_at, afterUpdate.emails[0].ready_at);
});

dbTest("a user created already confirmed gets a ready welcome email at once", async () => {
  const { handler } = setup();
  const user = await insertAuthUser({ confirmed: true });
  const res = await sendDatabaseEvent(handler, insertEvent(user.row));
  assert.equal(res.status, 200);
  const rows = await assertProvisionedOnce(user, { emailStatus: "ready" });
  assert.equal(rows.people[0].email, user.email);
});

dbTest("an email another person holds is not merged: this person keeps no email", async () => {
  const { handler, deps } = setup();
  const email = uniqueEmail("taken");
  const holder = await signInForTest(deps, { email });
  const user = await insertAuthUser({ email: email.toUpperCase(), confirmed: true });

  const res = await sendDatabaseEvent(handler, insertEvent(user.row));

  assert.equal(res.status, 200);
  const rows = await provisioned(user.id);
  assert.notEqual(user.id, holder.person.id);
  assert.equal(rows.people[0].email, null);
  assert.equal(rows.workspaces.length, 1);
  assert.deepEqual(rows.memberships, [{ workspace_id: rows.workspaces[0].id, role: "owner" }]);
  const [holderRow] =
    await testSql()`select email from identity.person where id = ${holder.person.id}`;
  assert.equal(holderRow.email, email);
});

dbTest("a confirmed email with an open invitation joins the inviting workspace", async () => {
  const { handler, deps } = setup();
  const inviter = await signInForTest(deps);
  const [inviting] = await testSql()`
    select workspace_id from identity.membership where person_id = ${inviter.person.id}`;
  const email = uniqueEmail("invited");
  await testSql()`
    insert into identity.invitation (email, workspace_id, role, invited_by)
    values (${email.toUpperCase()}, ${inviting.workspace_id}, 'admin', ${inviter.person.id})`;
  const user = await insertAuthUser({ email });

  // Unconfirmed: the invitation waits, so claiming an address never grants a workspace.
  await sendDatabaseEvent(handler, insertEvent(user.row));
  const before = await provisioned(user.id);
  assert.deepEqual(before.memberships.map((m) => m.role), ["owner"]);

  const { old, row } = await confirmEmail(user);
  const res = await sendDatabaseEvent(handler, updateEvent(row, old));

  assert.equal(res.status, 200);
  const after = await provisioned(user.id);
  assert.deepEqual(
    after.memberships.map((m) => ({ workspace_id: m.workspace_id, role: m.role })),
    [
      { workspace_id: after.workspaces[0].id, role: "owner" },
      { workspace_id: inviting.workspace_id, role: "admin" },
    ],
  );
  const [invitation] = await testSql()`
    select accepted_at from identity.invitation where lower(email::text) = ${email}`;
  assert.ok(invitation.accepted_at instanceof Date);
  // The token's workspace stays the one the person owns.
  assert.equal(after.appMetadata.workspace_id, after.workspaces[0].id);
});

dbTest("a user that does not exist in auth.users is ignored, nothing written", async () => {
  const { handler, deps } = setup();
  const user = { id: crypto.randomUUID(), email: uniqueEmail(), row: {} };
  const res = await sendHook(handler, deps.clock, afterUserCreated(user));
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { ignored: true });
  const [person] = await testSql()`select id from identity.person where id = ${user.id}`;
  assert.equal(person, undefined);
});

dbTest("an anonymous user is not provisioned", async () => {
  const { handler } = setup();
  const [row] = await testSql()`
    insert into auth.users (aud, role, is_anonymous) values ('authenticated', 'authenticated', true)
    returning to_jsonb(users.*) as row`;
  const res = await sendDatabaseEvent(handler, insertEvent(row.row));
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { ignored: true });
  await assertNothingWritten(row.row.id);
});

// ---------------------------------------------------------------------------------------------
// Other events and shapes
// ---------------------------------------------------------------------------------------------

dbTest("other signed events are answered { ignored: true } and write nothing", async () => {
  const { handler, deps } = setup();
  const user = await insertAuthUser();
  const otherUpdate = { ...user.row, raw_user_meta_data: { full_name: "Renamed" } };
  const events = [
    updateEvent(otherUpdate, user.row), // an UPDATE that confirms nothing
    { type: "DELETE", table: "users", schema: "auth", record: null, old_record: user.row },
    { ...insertEvent(user.row), table: "identities" },
    { ...insertEvent(user.row), schema: "public" },
  ];
  for (const event of events) {
    const res = await sendDatabaseEvent(handler, event);
    assert.equal(res.status, 200, JSON.stringify(event).slice(0, 60));
    assert.deepEqual(res.body, { ignored: true });
  }
  const hook = await sendHook(handler, deps.clock, {
    metadata: hookMetadata("send-email"),
    user: afterUserCreated(user).user,
    email_data: {},
  });
  assert.deepEqual([hook.status, hook.body], [200, { ignored: true }]);
  await assertNothingWritten(user.id);
});

dbTest(
  "a signed body of unknown shape is ignored; only a body that is not JSON is 400",
  async () => {
    const { handler } = setup();
    const user = await insertAuthUser();
    // SPEC §13.5: no content of a signed JSON delivery is refused (a retry brings the same bytes).
    const bodies = [
      { hello: "world" },
      [1, 2, 3],
      insertEvent({ id: "not-a-uuid" }),
      { metadata: { name: "after-user-created" } },
      { metadata: "after-user-created" },
      { ...insertEvent(user.row), record: null },
    ];
    for (const body of bodies) {
      const res = await call(handler, "signup-webhook", {
        body: JSON.stringify(body),
        token: webhookToken,
      });
      assert.deepEqual([res.status, res.body], [200, { ignored: true }], JSON.stringify(body));
    }
    const res = await call(handler, "signup-webhook", { body: "{not json", token: webhookToken });
    assert.equal(res.status, 400);
    assert.equal(res.body.code, "VALIDATION_FAILED");
    assert.equal(res.body.message, "Body is not valid JSON");
    await assertNothingWritten(user.id);
  },
);

dbTest("only POST is allowed", async () => {
  const { handler } = setup();
  const res = await call(handler, "signup-webhook", { method: "GET", token: webhookToken });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "POST");
});

// ---------------------------------------------------------------------------------------------
// Authentication: nothing is read or written without a valid signature or token
// ---------------------------------------------------------------------------------------------

/** One valid signed delivery of an after-user-created hook, and ways to break it. */
async function signedDelivery() {
  const { handler, deps } = setup();
  const user = await insertAuthUser();
  const body = JSON.stringify(afterUserCreated(user));
  const headers = await signedHeaders(body, deps.clock.now());
  return { handler, deps, user, body, headers };
}

async function assertRefused(
  handler: ReturnType<typeof createHandler>,
  userId: string,
  body: string,
  headers: Record<string, string>,
) {
  const res = await call(handler, "signup-webhook", { body, headers });
  assert.equal(res.status, 401);
  assert.deepEqual(res.body, {
    code: "INVALID_SIGNATURE",
    message: "Webhook signature or token is missing or invalid",
  });
  await assertNothingWritten(userId);
}

dbTest("a signature under the wrong secret is 401 and writes nothing", async () => {
  const { handler, deps, user, body } = await signedDelivery();
  const headers = await signedHeaders(body, deps.clock.now(), { secret: randomSecret() });
  await assertRefused(handler, user.id, body, headers);
});

dbTest("the second, rotated secret is accepted", async () => {
  const { handler, deps, user, body } = await signedDelivery();
  const headers = await signedHeaders(body, deps.clock.now(), { secret: rotatedSecret });
  const res = await call(handler, "signup-webhook", { body, headers });
  assert.equal(res.status, 200);
  await assertProvisionedOnce(user, { emailStatus: "awaiting_confirmation" });
});

dbTest("a body changed by one byte is 401 and writes nothing", async () => {
  const { handler, user, body, headers } = await signedDelivery();
  const changed = body.replace('"is_anonymous":false', '"is_anonymous":fals ');
  assert.equal(changed.length, body.length);
  assert.notEqual(changed, body);
  await assertRefused(handler, user.id, changed, headers);
});

dbTest(
  "a timestamp 6 minutes old or 6 minutes ahead is 401; 4 minutes either way is fine",
  async () => {
    const { handler, deps, user, body } = await signedDelivery();
    const now = deps.clock.now().getTime();
    for (const offsetMinutes of [-6, 6]) {
      const headers = await signedHeaders(body, new Date(now + offsetMinutes * 60_000));
      await assertRefused(handler, user.id, body, headers);
    }
    for (const offsetMinutes of [-4, 4]) {
      const headers = await signedHeaders(body, new Date(now + offsetMinutes * 60_000));
      const res = await call(handler, "signup-webhook", { body, headers });
      assert.equal(res.status, 200, `${offsetMinutes} minutes`);
    }
  },
);

dbTest("the tolerance follows the injected clock, not the machine's", async () => {
  const { handler, deps, user, body, headers } = await signedDelivery();
  deps.clock.advanceSeconds(6 * 60);
  await assertRefused(handler, user.id, body, headers);
});

dbTest("missing webhook headers are 401 and write nothing", async () => {
  const { handler, user, body, headers } = await signedDelivery();
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const { [name]: _, ...rest } = headers;
    await assertRefused(handler, user.id, body, rest);
  }
  await assertRefused(handler, user.id, body, { "content-type": "application/json" });
});

dbTest("a v1a signature alone is 401, even with the right bytes", async () => {
  const { handler, user, body, headers } = await signedDelivery();
  const v1a = headers["webhook-signature"].replace(/^v1,/, "v1a,");
  await assertRefused(handler, user.id, body, { ...headers, "webhook-signature": v1a });
});

dbTest("several signatures are accepted when one of them is valid", async () => {
  const { handler, user, body, headers } = await signedDelivery();
  const bogus = `v1,${btoa("x".repeat(32))}`;
  const res = await call(handler, "signup-webhook", {
    body,
    headers: {
      ...headers,
      "webhook-signature": `v1a,abc ${bogus} ${headers["webhook-signature"]}`,
    },
  });
  assert.equal(res.status, 200);
  await assertProvisionedOnce(user, { emailStatus: "awaiting_confirmation" });
});

dbTest("a wrong or missing bearer token is 401 and writes nothing", async () => {
  const { handler, user } = await signedDelivery();
  const body = JSON.stringify(insertEvent(user.row));
  for (const token of [`${webhookToken}x`, webhookToken.slice(0, -1), "anon-key-like-token"]) {
    await assertRefused(handler, user.id, body, { authorization: `Bearer ${token}` });
  }
  await assertRefused(handler, user.id, body, {});
});

dbTest("a signature made by the reference standardwebhooks library is accepted", async () => {
  const { handler, deps, user, body } = await signedDelivery();
  const id = "msg_2LJZVkWDy0sxzb2EqbEbJ6pO5ZL";
  const signature = new Webhook(hookSecret.replace(/^v1,/, "")).sign(id, deps.clock.now(), body);
  const res = await call(handler, "signup-webhook", {
    body,
    headers: {
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(deps.clock.now().getTime() / 1000)),
      "webhook-signature": signature,
    },
  });
  assert.equal(res.status, 200);
  await assertProvisionedOnce(user, { emailStatus: "awaiting_confirmation" });
});

dbTest("only the bearer token configured: a signed hook is refused, the token works", async () => {
  const { handler, deps } = setup({ SIGNUP_HOOK_SECRET: "" });
  const user = await insertAuthUser();
  const body = JSON.stringify(afterUserCreated(user));
  await assertRefused(handler, user.id, body, await signedHeaders(body, deps.clock.now()));
  const res = await sendDatabaseEvent(handler, insertEvent(user.row));
  assert.equal(res.status, 200);
});

dbTest("neither SIGNUP_HOOK_SECRET nor SIGNUP_WEBHOOK_TOKEN set is 503", async () => {
  const { handler, deps } = setup({ SIGNUP_HOOK_SECRET: "", SIGNUP_WEBHOOK_TOKEN: "" });
  const body = JSON.stringify(beforeUserCreated(uniqueEmail()));
  const res = await call(handler, "signup-webhook", {
    body,
    headers: await signedHeaders(body, deps.clock.now()),
  });
  assert.equal(res.status, 503);
  assert.equal(res.body.code, "SIGNUP_WEBHOOK_NOT_CONFIGURED");
  assert.match(res.body.message, /SIGNUP_HOOK_SECRET/);
});

dbTest("a malformed SIGNUP_HOOK_SECRET is 503 naming the variable, never the value", async () => {
  const secret = "v1,whsec_not base64!";
  const { handler } = setup({ SIGNUP_HOOK_SECRET: `${hookSecret}|${secret}` });
  const res = await call(handler, "signup-webhook", { body: "{}", token: webhookToken });
  assert.equal(res.status, 503);
  assert.equal(res.body.code, "SIGNUP_WEBHOOK_NOT_CONFIGURED");
  assert.match(res.body.message, /SIGNUP_HOOK_SECRET is malformed/);
  assert.ok(!res.body.message.includes("not base64"));
});

Deno.test("createStandardWebhookVerifier() returns null for a secret that is not base64", () => {
  assert.equal(createStandardWebhookVerifier(["v1,whsec_%%%"]), null);
  assert.equal(createStandardWebhookVerifier([]), null);
  assert.ok(createStandardWebhookVerifier([hookSecret, rotatedSecret.replace(/^v1,/, "")]));
});

// ---------------------------------------------------------------------------------------------
// before-user-created: invite-only signups
// ---------------------------------------------------------------------------------------------

function inviteOnly() {
  const { handler, deps } = setup({ SIGNUP_MODE: "invite" });
  const check = async (email: string) =>
    await sendHook(handler, deps.clock, beforeUserCreated(email));
  return { handler, deps, check };
}

dbTest("before-user-created allows any email when signups are open", async () => {
  const { handler, deps } = setup();
  const res = await sendHook(handler, deps.clock, beforeUserCreated(uniqueEmail()));
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, {});
});

dbTest("invite mode: before-user-created allows an invited email, in any case", async () => {
  const { check } = inviteOnly();
  const email = uniqueEmail("invitee");
  await testSql()`insert into identity.invitation (email) values (${email})`;
  for (const variant of [email, email.toUpperCase()]) {
    const res = await check(variant);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {});
  }
});

dbTest(
  "invite mode: before-user-created refuses an uninvited email in Supabase's shape",
  async () => {
    const { check } = inviteOnly();
    const refusal = {
      error: { http_code: 403, message: "Signups are by invitation only" },
    };
    const expired = uniqueEmail("expired");
    const accepted = uniqueEmail("accepted");
    await testSql()`
    insert into identity.invitation (email, expires_at) values (${expired}, now() - interval '1 minute')`;
    await testSql()`
    insert into identity.invitation (email, accepted_at) values (${accepted}, now())`;
    for (const email of [uniqueEmail("stranger"), expired, accepted, ""]) {
      const res = await check(email);
      assert.equal(res.status, 200, email);
      assert.deepEqual(res.body, refusal, email);
    }
  },
);

dbTest("invite mode: before-user-created is still authenticated first", async () => {
  const { handler } = inviteOnly();
  const body = JSON.stringify(beforeUserCreated(uniqueEmail()));
  const res = await call(handler, "signup-webhook", { body });
  assert.equal(res.status, 401);
  assert.equal(res.body.code, "INVALID_SIGNATURE");
});

// ---------------------------------------------------------------------------------------------
// The database webhook trigger, end to end (pg_net and Vault stubbed in a rolled-back transaction)
// ---------------------------------------------------------------------------------------------

class Rollback extends Error {}

dbTest(
  "the auth.users trigger sends a payload and token this function accepts, without secrets of the row",
  async () => {
    const { handler } = setup();
    const url = "http://127.0.0.1:54321/functions/v1/signup-webhook";
    const userId = crypto.randomUUID();
    const email = uniqueEmail("trigger");
    let requests: { url: string; body: Json; headers: Json }[] = [];
    await testSql().begin(async (tx) => {
      // What a Supabase project with Database Webhooks and Vault has, reduced to what is called.
      await tx.unsafe(`
        create schema supabase_functions;
        create function supabase_functions.http_request() returns trigger language plpgsql
          as $$ begin return null; end $$;
        create schema net;
        create table net.sent (url text, body jsonb, headers jsonb);
        create function net.http_post(
          url text, body jsonb, params jsonb, headers jsonb, timeout_milliseconds integer
        ) returns bigint language sql
          as $$ insert into net.sent values (url, body, headers); select 1::bigint $$;
        create schema vault;
        create table vault.decrypted_secrets (name text, decrypted_secret text);`);
      await tx`
        insert into vault.decrypted_secrets values
          ('signup_webhook_url', ${url}), ('signup_webhook_token', ${webhookToken})`;
      const [{ installed }] = await tx`select identity.install_signup_webhook() as installed`;
      assert.equal(installed, "installed");
      // Columns Supabase's auth.users has and the compatibility script leaves out.
      await tx.unsafe(`
        alter table auth.users add column if not exists encrypted_password text;
        alter table auth.users add column if not exists last_sign_in_at timestamptz;`);
      await tx`
        insert into auth.users (id, aud, role, email, encrypted_password, raw_user_meta_data)
        values (${userId}, 'authenticated', 'authenticated', ${email}, 'bcrypt-hash',
          ${tx.json({ full_name: "Trigger Test" })})`;
      // A sign-in touches the row without confirming anything: no delivery.
      await tx`update auth.users set last_sign_in_at = now() where id = ${userId}`;
      await tx`update auth.users set email_confirmed_at = now() where id = ${userId}`;
      requests = await tx`select url, body, headers from net.sent` as unknown as typeof requests;
      throw new Rollback();
    }).catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });

    assert.deepEqual(requests.map((r) => [r.url, r.body.type]), [[url, "INSERT"], [url, "UPDATE"]]);
    const [insert, update] = requests;
    assert.equal(insert.headers.authorization, `Bearer ${webhookToken}`);
    assert.equal(insert.body.old_record, null);
    assert.equal((update.body.old_record as Json).email_confirmed_at, null);
    assert.ok(!JSON.stringify(requests).includes("bcrypt-hash"));

    // The row the trigger saw, now for real; then the deliveries it sent, in their order.
    await testSql()`
      insert into auth.users (id, aud, role, email, email_confirmed_at, raw_user_meta_data)
      values (${userId}, 'authenticated', 'authenticated', ${email}, now(),
        ${testSql().json({ full_name: "Trigger Test" })})`;
    for (const request of requests) {
      const res = await call(handler, "signup-webhook", {
        body: JSON.stringify(request.body),
        headers: request.headers as Record<string, string>,
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.person_id, userId);
    }
    const rows = await provisioned(userId);
    assert.equal(rows.workspaces[0].name, "Trigger Test");
    assert.equal(rows.emails[0].status, "ready");
  },
);

dbTest("on plain Postgres the database webhook is not installed", async () => {
  const [{ result }] = await testSql()`select identity.install_signup_webhook() as result`;
  assert.match(result, /^skipped/);
  const triggers = await testSql()`
    select tgname from pg_trigger where tgrelid = 'auth.users'::regclass and not tgisinternal`;
  assert.deepEqual([...triggers], []);
});
