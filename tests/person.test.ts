import assert from "node:assert/strict";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { TestClock } from "./support/deps.ts";
import { identity as anyIdentity, upsertPerson } from "./support/person.ts";

const clock = new TestClock();
const open = { signupMode: "open" as const, now: clock.now() };

const identity: typeof anyIdentity = (overrides = {}) =>
  anyIdentity({ displayName: "Ada Lovelace", ...overrides });

async function personsWithEmail(email: string) {
  return await testSql()`select * from identity.person where email = ${email}`;
}

dbTest("20 concurrent first upserts of one email make one person", async () => {
  const email = uniqueEmail("race");
  const stytchUser = `user-test-${crypto.randomUUID()}`;
  const results = await Promise.all(
    Array.from(
      { length: 20 },
      () => upsertPerson(identity({ email, providerUserId: stytchUser }), open),
    ),
  );
  const ids = new Set(results.map((r) => r.ok ? r.person.id : r.error));
  assert.equal(ids.size, 1);
  assert.equal(results.filter((r) => r.ok && r.isNewUser).length, 1);
  assert.equal((await personsWithEmail(email)).length, 1);
});

dbTest(
  "20 concurrent first sign-ins of one email through both providers make one person",
  async () => {
    const email = uniqueEmail("race2");
    const stytchUser = `user-test-${crypto.randomUUID()}`;
    const workosUser = `user_${crypto.randomUUID()}`;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      upsertPerson(
        i % 2
          ? identity({ email, providerUserId: stytchUser })
          : identity({ email, provider: "workos", providerUserId: workosUser }),
        open,
      )));
    assert.ok(results.every((r) => r.ok));
    const [person, ...others] = await personsWithEmail(email);
    assert.equal(others.length, 0);
    assert.equal(person.stytch_user_id, stytchUser);
    assert.equal(person.workos_user_id, workosUser);
  },
);

dbTest("the email is matched case-insensitively", async () => {
  const email = uniqueEmail("Case");
  const first = await upsertPerson(identity({ email }), open);
  const second = await upsertPerson(
    identity({
      provider: "workos",
      providerUserId: `user_${crypto.randomUUID()}`,
      email: email.toUpperCase(),
    }),
    open,
  );
  assert.ok(first.ok && second.ok);
  assert.equal(second.person.id, first.person.id);
  assert.equal(second.isNewUser, false);
});

dbTest("the provider's user id wins over the email", async () => {
  const workosUser = `user_${crypto.randomUUID()}`;
  const first = await upsertPerson(
    identity({ provider: "workos", providerUserId: workosUser }),
    open,
  );
  const other = await upsertPerson(identity(), open);
  assert.ok(first.ok && other.ok);
  // The same WorkOS user now reports the other person's (verified) email.
  const again = await upsertPerson(
    identity({ provider: "workos", providerUserId: workosUser, email: other.person.email }),
    open,
  );
  assert.ok(again.ok);
  assert.equal(again.person.id, first.person.id);
  assert.equal(again.isNewUser, false);
});

dbTest(
  "an unverified email that belongs to another person is refused and changes nothing",
  async () => {
    const existing = await upsertPerson(identity(), open);
    assert.ok(existing.ok);
    const before = await testSql()`select count(*)::int as n from identity.person`;
    const result = await upsertPerson(
      identity({
        provider: "workos",
        providerUserId: `user_${crypto.randomUUID()}`,
        email: existing.person.email,
        emailVerified: false,
      }),
      open,
    );
    assert.deepEqual(result, { ok: false, error: "EMAIL_NOT_VERIFIED" });
    const after = await testSql()`select count(*)::int as n from identity.person`;
    assert.equal(after[0].n, before[0].n);
    const [row] =
      await testSql()`select workos_user_id from identity.person where id = ${existing.person.id}`;
    assert.equal(row.workos_user_id, null);
  },
);

dbTest("a new person with an unverified email is created without claiming the email", async () => {
  const email = uniqueEmail("unverified");
  const result = await upsertPerson(
    identity({
      provider: "workos",
      providerUserId: `user_${crypto.randomUUID()}`,
      email,
      emailVerified: false,
    }),
    open,
  );
  assert.ok(result.ok);
  assert.equal(result.person.email, null);
  assert.equal((await personsWithEmail(email)).length, 0);
});

dbTest(
  "a verified email already linked to another account of the same provider is a conflict",
  async () => {
    const existing = await upsertPerson(identity(), open);
    assert.ok(existing.ok);
    const result = await upsertPerson(identity({ email: existing.person.email }), open);
    assert.deepEqual(result, { ok: false, error: "IDENTITY_CONFLICT" });
  },
);

dbTest("invite mode refuses a new person without an open invitation", async () => {
  const invite = { signupMode: "invite" as const, now: clock.now() };
  const email = uniqueEmail("uninvited");
  assert.deepEqual(await upsertPerson(identity({ email }), invite), {
    ok: false,
    error: "SIGNUP_DISABLED",
  });
  assert.equal((await personsWithEmail(email)).length, 0);

  const invited = uniqueEmail("invited");
  await testSql()`insert into identity.invitation (email) values (${invited.toUpperCase()})`;
  const result = await upsertPerson(identity({ email: invited }), invite);
  assert.ok(result.ok && result.isNewUser);
});

dbTest("invite mode still signs in an existing person", async () => {
  const existing = identity();
  assert.ok((await upsertPerson(existing, open)).ok);
  const again = await upsertPerson(existing, { signupMode: "invite", now: clock.now() });
  assert.ok(again.ok && !again.isNewUser);
});
