/**
 * Email in `npm run dev` (local/dev_email.ts): the Resend emulator fills in when RESEND_API_KEY is
 * unset, the loop delivers the outbox through the local server's email-dispatch, and
 * `GET /_dev/mail` lists the mailbox.
 */
import assert from "node:assert/strict";
import { setUpDevEmail } from "../local/dev_email.ts";
import { startLocalServer } from "../local/server.ts";
import type { Env } from "../supabase/functions/_shared/config.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { testEnv } from "./support/deps.ts";
import { testSecretKey } from "./support/keys.ts";

dbTest(
  "npm run dev's loop delivers a ready email to the emulator, listed at GET /_dev/mail",
  async () => {
    await testSql()`delete from identity.email_outbox where status = 'ready'`;
    const env: Env = testEnv({ SITE_URL: "http://127.0.0.1:54321" });
    const devEmail = await setUpDevEmail(env, { intervalMs: 50 });
    const lines: string[] = [];
    const log = devEmail.logger("info", (line) => lines.push(line));
    const server = await startLocalServer({
      env,
      sql: testSql(),
      deps: { log },
      fallback: (req) =>
        Promise.resolve(devEmail.route(req) ?? new Response(null, { status: 404 })),
    });
    try {
      assert.match(devEmail.note ?? "", /^RESEND_API_KEY is not set/);
      assert.equal(env.EMAIL_FROM, "Platform <no-reply@localhost.test>");
      const to = uniqueEmail("dev");
      const [person] =
        await testSql()`insert into identity.person (email) values (${to}) returning id`;
      await testSql()`
      insert into identity.email_outbox (person_id, to_email, template, status, payload)
      values (${person.id}, ${to}, 'welcome', 'ready', ${
        testSql().json({ workspace_name: "Dev" })
      })`;

      devEmail.startDispatchLoop(server.functionsUrl, testSecretKey);
      let emails: { to: string[]; subject: string }[] = [];
      for (let i = 0; i < 100 && emails.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const res = await fetch(`${server.url}/_dev/mail`);
        assert.equal(res.status, 200);
        emails = (await res.json()).emails;
      }
      assert.deepEqual(emails.map((e) => [e.to, e.subject]), [[[to], "Welcome to Dev"]]);
      const [row] =
        await testSql()`select status from identity.email_outbox where person_id = ${person.id}`;
      assert.equal(row.status, "sent");

      const post = await fetch(`${server.url}/_dev/mail`, { method: "POST" });
      assert.equal(post.status, 405);
      await post.body?.cancel();
    } finally {
      await server.close();
      await devEmail.close();
    }
    // The loop's routine calls are not logged; what they did is.
    const events = lines.map((line) => JSON.parse(line)).map((l) => `${l.fn} ${l.event}`);
    assert.ok(events.includes("email-dispatch email_dispatch_run"), events.join(", "));
    assert.ok(!events.includes("email-dispatch request"), events.join(", "));
  },
);

dbTest("with RESEND_API_KEY set, dev leaves email to Resend and /_dev/mail says so", async () => {
  const env: Env = { RESEND_API_KEY: "re_real_key", EMAIL_FROM: "a@acme.test" };
  const devEmail = await setUpDevEmail(env);
  try {
    assert.equal(devEmail.note, null);
    assert.equal(env.RESEND_API_URL, undefined);
    const res = devEmail.route(new Request("http://127.0.0.1/_dev/mail"));
    assert.equal(res?.status, 404);
    assert.equal(devEmail.route(new Request("http://127.0.0.1/other")), null);
  } finally {
    await devEmail.close();
  }
});
