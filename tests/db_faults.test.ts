/**
 * Deadlines (SPEC §13.6): with a TCP proxy between the functions and Postgres that refuses,
 * black-holes or slows the traffic, a request answers 503 DATABASE_UNAVAILABLE with Retry-After
 * within 6 s, writes nothing half, and the same handler recovers on its own once the database is
 * back.
 */
import assert from "node:assert/strict";
import { connectDatabase } from "../supabase/functions/_shared/pool.ts";
import { createHandler as createMeHandler } from "../supabase/functions/me/handler.ts";
import { createHandler as createSignupHandler } from "../supabase/functions/signup-webhook/handler.ts";
import { dbTest, testDatabaseKind, testDatabaseUrl, testSql } from "./support/db.ts";
import { testDeps } from "./support/deps.ts";
import { startFaultProxy } from "./support/fault_proxy.ts";
import { call } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

const webhookToken = `fault-test-webhook-token-${crypto.randomUUID()}`;
const deadlineMs = 6_000;

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

dbTest(
  "a refused, black-holed or slow database is 503 within 6 s, and recovers alone",
  async () => {
    const proxy = await startFaultProxy(testDatabaseUrl);
    const sql = connectDatabase(proxy.url, { max: 2 });
    try {
      const deps = { ...testDeps({ env: { SIGNUP_WEBHOOK_TOKEN: webhookToken } }), sql };
      const me = createMeHandler(deps);
      const session = await signInForTest(testDeps());
      const ask = () => call(me, "me", { token: session.access_token });
      assert.equal((await ask()).status, 200);

      for (const mode of ["refuse", "blackhole", "slow"] as const) {
        proxy.set(mode, { delayMs: 8_000 });
        const { value: res, ms } = await timed(ask);
        assert.equal(res.status, 503, `${mode}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.code, "DATABASE_UNAVAILABLE", mode);
        assert.ok(Number(res.headers.get("retry-after")) > 0, mode);
        assert.ok(ms < deadlineMs, `${mode} took ${ms} ms`);

        proxy.set("pass");
        const recovered = await timed(async () => {
          // The first request after the outage may still find a connection the outage held.
          for (let attempt = 0; attempt < 5; attempt++) {
            const again = await ask();
            if (again.status === 200) return again;
          }
          return await ask();
        });
        assert.equal(recovered.value.status, 200, `${mode}: no recovery`);
      }
    } finally {
      await sql.end({ timeout: 0 });
      await proxy.close();
    }
  },
  { ignore: testDatabaseKind === "pglite" },
);

dbTest("provisioning that meets a black-holed database writes nothing half", async () => {
  const proxy = await startFaultProxy(testDatabaseUrl);
  const sql = connectDatabase(proxy.url, { max: 2 });
  try {
    const deps = { ...testDeps({ env: { SIGNUP_WEBHOOK_TOKEN: webhookToken } }), sql };
    const signup = createSignupHandler(deps);
    const [user] = await testSql()`
      insert into auth.users (email, email_confirmed_at)
      values (${`fault.${crypto.randomUUID().slice(0, 8)}@example.test`}, now())
      returning id, email, email_confirmed_at`;
    const event = {
      type: "INSERT",
      table: "users",
      schema: "auth",
      record: { id: user.id, email: user.email, email_confirmed_at: user.email_confirmed_at },
      old_record: null,
    };
    const deliver = () => call(signup, "signup-webhook", { body: event, token: webhookToken });

    proxy.set("blackhole");
    const { value: refused, ms } = await timed(deliver);
    assert.equal(refused.status, 503);
    assert.ok(ms < deadlineMs, `took ${ms} ms`);
    proxy.set("pass");

    // Whatever the cancelled statement did, it did all of it or none of it.
    const rows = async () => {
      const [row] = await testSql()`
        select (select count(*)::int from identity.person where id = ${user.id}) as persons,
               (select count(*)::int from identity.membership where person_id = ${user.id}) as memberships,
               (select count(*)::int from identity.email_outbox where person_id = ${user.id}) as emails`;
      return row;
    };
    const after = await rows();
    assert.ok(
      [0, 1].includes(after.persons) && after.memberships === after.persons &&
        after.emails === after.persons,
      JSON.stringify(after),
    );
    // The redelivery Supabase makes completes it, once.
    let delivered = await deliver();
    for (let attempt = 0; delivered.status !== 200 && attempt < 5; attempt++) {
      delivered = await deliver();
    }
    assert.equal(delivered.status, 200);
    assert.deepEqual(await rows(), { persons: 1, memberships: 1, emails: 1 });
  } finally {
    await sql.end({ timeout: 0 });
    await proxy.close();
  }
}, { ignore: testDatabaseKind === "pglite" });
