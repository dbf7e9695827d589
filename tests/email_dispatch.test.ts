/**
 * email-dispatch (SPEC §11) against the local Resend emulator and the test Postgres: delivery,
 * idempotency across crashes, the retry schedule, failures, concurrent runs, escaping, the 503 of
 * a missing setting, the caller check, and the pg_cron installation.
 */
import assert from "node:assert/strict";
import { type ResendEmulator, startResendEmulator } from "../local/emulators/resend.ts";
import { createHandler } from "../supabase/functions/email-dispatch/handler.ts";
import { type Env, loadConfig } from "../supabase/functions/_shared/config.ts";
import { claimDueEmails } from "../supabase/functions/_shared/email_outbox.ts";
import { renderEmail } from "../supabase/functions/_shared/email_templates.ts";
import { createResendClient } from "../supabase/functions/_shared/resend.ts";
import { dbTest, testSql } from "./support/db.ts";
import { type TestClock, type TestDeps, testDeps } from "./support/deps.ts";
import { call, type CallResult } from "./support/http.ts";
import { testPublishableKey, testSecretKey } from "./support/keys.ts";

const siteUrl = "https://app.example.test";
const from = "Platform <no-reply@platform.test>";

interface Bed {
  resend: ResendEmulator;
  deps: TestDeps;
  clock: TestClock;
  dispatch(apiKey?: string | null): Promise<CallResult>;
}

/**
 * The emulator, a handler configured for it, and an outbox with no ready row but the test's own
 * (the scratch database is shared by every test file, which run one after another).
 */
async function withBed(
  fn: (bed: Bed) => Promise<void>,
  options: { env?: Env; clock?: TestClock } = {},
): Promise<void> {
  await testSql()`delete from identity.email_outbox where status = 'ready'`;
  const resend = await startResendEmulator();
  try {
    const deps = testDeps({
      clock: options.clock,
      env: {
        RESEND_API_KEY: resend.apiKey,
        RESEND_API_URL: resend.url,
        EMAIL_FROM: from,
        SITE_URL: siteUrl,
        ...options.env,
      },
    });
    const handler = createHandler(deps);
    await fn({
      resend,
      deps,
      clock: deps.clock,
      dispatch: (apiKey = testSecretKey) =>
        call(handler, "email-dispatch", { method: "POST", apiKey }),
    });
  } finally {
    await resend.close();
  }
}

interface QueuedEmail {
  id: string;
  to: string;
}

/** `count` ready welcome emails, each to a new person. */
async function queueWelcomes(
  count: number,
  payload: Record<string, string> = { workspace_name: "Acme", display_name: "Ada" },
): Promise<QueuedEmail[]> {
  const run = crypto.randomUUID().slice(0, 8);
  const rows = await testSql()`
    with p as (
      insert into identity.person (email)
      select 'mail.' || ${run} || '.' || i || '@example.test' from generate_series(1, ${count}) i
      returning id, email
    )
    insert into identity.email_outbox (person_id, to_email, template, status, payload, ready_at)
    select p.id, p.email, 'welcome', 'ready', ${testSql().json(payload)}, now() from p
    returning id, to_email`;
  return rows.map((row) => ({ id: row.id, to: row.to_email }));
}

async function outboxRow(id: string) {
  const [row] = await testSql()`
    select status, attempts, next_attempt_at, last_error, provider_id, sent_at, failed_at
    from identity.email_outbox where id = ${id}`;
  return row;
}

/** Seconds from the clock's now until the row's next attempt. */
async function secondsUntilDue(id: string, clock: TestClock): Promise<number> {
  const row = await outboxRow(id);
  return (row.next_attempt_at.getTime() - clock.now().getTime()) / 1000;
}

const nothing = { sent: 0, retried: 0, failed: 0 };

// ---------------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------------

dbTest(
  "email-dispatch sends a ready email through Resend and marks it sent with Resend's id",
  async () => {
    await withBed(async ({ resend, dispatch, clock }) => {
      const [email] = await queueWelcomes(1);
      const res = await dispatch();
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { sent: 1, retried: 0, failed: 0 });
      assert.ok(res.headers.get("x-request-id"));

      const [sent] = resend.mailbox();
      assert.deepEqual(sent.to, [email.to]);
      assert.equal(sent.from, from);
      assert.equal(sent.subject, "Welcome to Acme");
      assert.equal(sent.idempotencyKey, email.id);
      assert.ok(sent.html?.includes(`href="${siteUrl}/"`));
      assert.ok(sent.text?.includes(`Sign in: ${siteUrl}/`));
      assert.deepEqual(sent.tags, [{ name: "template", value: "welcome" }]);

      const row = await outboxRow(email.id);
      assert.equal(row.status, "sent");
      assert.equal(row.provider_id, sent.id);
      assert.equal(row.sent_at.getTime(), clock.now().getTime());
      assert.equal(row.attempts, 1);
      assert.equal(row.last_error, null);

      // Nothing is left to send: a second run sends nothing again.
      assert.deepEqual((await dispatch()).body, nothing);
      assert.equal(resend.requests(), 1);
    });
  },
);

dbTest("email-dispatch drains more rows than one batch in one run", async () => {
  await withBed(async ({ resend, dispatch }) => {
    const [{ batch }] =
      await testSql()`select identity.policy('email_dispatch_batch_rows') as batch`;
    const emails = await queueWelcomes(batch * 2 + 3);
    assert.deepEqual((await dispatch()).body, { sent: emails.length, retried: 0, failed: 0 });
    assert.equal(resend.mailbox().length, emails.length);
  });
});

dbTest("email-dispatch leaves rows alone that are not ready", async () => {
  await withBed(async ({ resend, dispatch }) => {
    const [email] = await queueWelcomes(1);
    await testSql()`
      update identity.email_outbox set status = 'awaiting_confirmation' where id = ${email.id}`;
    assert.deepEqual((await dispatch()).body, nothing);
    assert.equal(resend.requests(), 0);
    assert.equal((await outboxRow(email.id)).attempts, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

dbTest(
  "a run that crashed between sending and recording does not make the email go out twice",
  async () => {
    await withBed(async ({ resend, dispatch, clock, deps }) => {
      const [email] = await queueWelcomes(1);
      // A run claims the row, sends it as email-dispatch does, and dies before recording anything.
      const claim = await claimDueEmails(testSql(), clock.now());
      assert.deepEqual(claim.emails.map((e) => e.id), [email.id]);
      const config = deps.config.email.ok ? deps.config.email.value : assert.fail("email config");
      const rendered = renderEmail("welcome", claim.emails[0].payload, {
        siteUrl: config.siteUrl,
        toEmail: email.to,
      });
      const crashed = await createResendClient(config).send(
        { to: email.to, ...rendered, tags: [{ name: "template", value: "welcome" }] },
        email.id,
      );
      assert.equal(crashed.kind, "sent");

      // While the dead run's lease holds, nobody else sends the row.
      assert.deepEqual((await dispatch()).body, nothing);
      clock.advanceSeconds(5 * 60);
      assert.deepEqual((await dispatch()).body, nothing);
      assert.equal(resend.requests(), 1);

      // After the lease, the row is sent again under the same key: Resend answers the first id.
      const [{ lease }] =
        await testSql()`select identity.policy('email_claim_lease_seconds') as lease`;
      clock.advanceSeconds(lease);
      assert.deepEqual((await dispatch()).body, { sent: 1, retried: 0, failed: 0 });
      assert.equal(resend.requests(), 2);
      assert.equal(resend.mailbox().length, 1);
      const row = await outboxRow(email.id);
      assert.equal(row.status, "sent");
      assert.equal(row.provider_id, resend.mailbox()[0].id);
      assert.equal(row.attempts, 2);
    });
  },
);

dbTest(
  "an answer lost after Resend accepted the email is retried under the same key and sent once",
  async () => {
    await withBed(async ({ resend, dispatch, clock }) => {
      const [email] = await queueWelcomes(1);
      resend.failNext("network_after_send");
      assert.deepEqual((await dispatch()).body, { sent: 0, retried: 1, failed: 0 });
      assert.equal(resend.mailbox().length, 1);
      assert.match((await outboxRow(email.id)).last_error, /^network: /);

      clock.advanceSeconds(await secondsUntilDue(email.id, clock) + 1);
      assert.deepEqual((await dispatch()).body, { sent: 1, retried: 0, failed: 0 });
      assert.equal(resend.mailbox().length, 1);
      assert.equal((await outboxRow(email.id)).provider_id, resend.mailbox()[0].id);
    });
  },
);

// ---------------------------------------------------------------------------------------------
// Retries and failures
// ---------------------------------------------------------------------------------------------

for (
  const [fault, error] of [
    [{ status: 429 }, /^429 rate_limit_exceeded: /],
    [{ status: 500 }, /^500 internal_server_error: /],
    ["network", /^network: /],
  ] as const
) {
  const name = typeof fault === "string" ? "a network error" : `a ${fault.status}`;
  dbTest(`after ${name} the email is retried about a minute later, then sent`, async () => {
    await withBed(async ({ resend, dispatch, clock }) => {
      const [email] = await queueWelcomes(1);
      resend.failNext(fault);
      assert.deepEqual((await dispatch()).body, { sent: 0, retried: 1, failed: 0 });
      const row = await outboxRow(email.id);
      assert.equal(row.status, "ready");
      assert.equal(row.attempts, 1);
      assert.match(row.last_error, error);
      const wait = await secondsUntilDue(email.id, clock);
      assert.ok(wait >= 48 && wait <= 72, `waits ${wait} s`);

      // Not due yet: nothing is sent.
      clock.advanceSeconds(47);
      assert.deepEqual((await dispatch()).body, nothing);
      assert.equal(resend.requests(), 1);

      clock.advanceSeconds(26);
      assert.deepEqual((await dispatch()).body, { sent: 1, retried: 0, failed: 0 });
      assert.equal(resend.mailbox().length, 1);
      assert.equal((await outboxRow(email.id)).status, "sent");
    });
  });
}

dbTest(
  "each failure doubles the wait, and the 8th failure fails the row with its last error",
  async () => {
    await withBed(async ({ resend, dispatch, clock }) => {
      const [email] = await queueWelcomes(1);
      const [{ attempts, base }] = await testSql()`
      select identity.policy('email_max_attempts') as attempts,
        identity.policy('email_retry_base_seconds') as base`;
      assert.equal(attempts, 8);
      assert.equal(base, 60);
      resend.failNext({ status: 503 }, attempts - 1);
      resend.failNext({ status: 502 });
      for (let failure = 1; failure < attempts; failure++) {
        assert.deepEqual((await dispatch()).body, { sent: 0, retried: 1, failed: 0 });
        const wait = await secondsUntilDue(email.id, clock);
        const expected = base * 2 ** (failure - 1);
        assert.ok(
          wait >= expected * 0.8 && wait <= expected * 1.2,
          `after failure ${failure}: waits ${wait} s, expected about ${expected} s`,
        );
        clock.advanceSeconds(wait + 1);
      }
      assert.deepEqual((await dispatch()).body, { sent: 0, retried: 0, failed: 1 });
      const row = await outboxRow(email.id);
      assert.equal(row.status, "failed");
      assert.equal(row.attempts, attempts);
      assert.equal(row.failed_at.getTime(), clock.now().getTime());
      assert.equal(row.next_attempt_at, null);
      assert.match(row.last_error, /^502 /);

      clock.advanceSeconds(24 * 3600);
      assert.deepEqual((await dispatch()).body, nothing);
      assert.equal(resend.requests(), attempts);
      assert.equal(resend.mailbox().length, 0);
    });
  },
);

dbTest("the wait never exceeds the 6-hour cap and honours a longer Retry-After", async () => {
  const [{ cap }] = await testSql()`select identity.policy('email_retry_cap_seconds') as cap`;
  assert.equal(cap, 6 * 3600);
  const [{ late, told, short }] = await testSql()`
    select extract(epoch from identity.email_retry_delay(30, null)) as late,
      extract(epoch from identity.email_retry_delay(1, 600)) as told,
      extract(epoch from identity.email_retry_delay(1, 1)) as short`;
  assert.equal(Number(late), cap);
  assert.equal(Number(told), 600);
  assert.ok(Number(short) >= 48 && Number(short) <= 72);
});

dbTest("a 4xx fails the row at once and keeps Resend's error", async () => {
  await withBed(async ({ resend, dispatch, clock }) => {
    const [refused] = await queueWelcomes(1);
    resend.failNext({ status: 422 });
    assert.deepEqual((await dispatch()).body, { sent: 0, retried: 0, failed: 1 });
    const row = await outboxRow(refused.id);
    assert.equal(row.status, "failed");
    assert.equal(row.attempts, 1);
    assert.equal(row.failed_at.getTime(), clock.now().getTime());
    assert.match(row.last_error, /^422 validation_error: /);

    // Resend's own refusal of an address it cannot send to, end to end.
    const [bad] = await queueWelcomes(1);
    await testSql()`update identity.email_outbox set to_email = 'not an address' where id = ${bad.id}`;
    assert.deepEqual((await dispatch()).body, { sent: 0, retried: 0, failed: 1 });
    assert.match((await outboxRow(bad.id)).last_error, /^422 validation_error: Invalid `to` field/);

    clock.advanceSeconds(24 * 3600);
    assert.deepEqual((await dispatch()).body, nothing);
    assert.equal(resend.mailbox().length, 0);
  });
});

dbTest("a row with a template no one knows fails without being sent", async () => {
  await withBed(async ({ resend, dispatch }) => {
    const [email] = await queueWelcomes(1);
    await testSql()`update identity.email_outbox set template = 'newsletter' where id = ${email.id}`;
    assert.deepEqual((await dispatch()).body, { sent: 0, retried: 0, failed: 1 });
    assert.equal((await outboxRow(email.id)).last_error, "unknown template");
    assert.equal(resend.requests(), 0);
  });
});

dbTest(
  "after a retryable failure a run starts no more sends and gives the other rows back untried",
  async () => {
    await withBed(async ({ resend, dispatch }) => {
      const emails = await queueWelcomes(6);
      resend.failNext({ status: 500 });
      const first = await dispatch();
      assert.equal(first.body.retried, 1);
      assert.equal(first.body.failed, 0);
      const sentFirst = first.body.sent;
      assert.equal(resend.requests(), sentFirst + 1);
      const rows = await Promise.all(emails.map((e) => outboxRow(e.id)));
      const untried = rows.filter((r) => r.status === "ready" && r.attempts === 0);
      assert.equal(untried.length, emails.length - sentFirst - 1);

      // The next run sends them; the failed one waits for its backoff.
      assert.deepEqual((await dispatch()).body, { sent: untried.length, retried: 0, failed: 0 });
      assert.equal(resend.mailbox().length, emails.length - 1);
    });
  },
);

dbTest(
  "a run waits for Resend's rate-limit window when ratelimit-remaining reaches 0",
  async () => {
    await withBed(async ({ resend, deps }) => {
      // Resend's rate-limit headers, added by a proxy in front of the emulator: 0 left, reset in 1 s.
      const proxy = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        async (req) => {
          const upstream = await fetch(`${resend.url}${new URL(req.url).pathname}`, {
            method: req.method,
            headers: req.headers,
            body: await req.arrayBuffer(),
          });
          return new Response(await upstream.arrayBuffer(), {
            status: upstream.status,
            headers: {
              "content-type": "application/json",
              "ratelimit-limit": "2",
              "ratelimit-remaining": "0",
              "ratelimit-reset": "1",
            },
          });
        },
      );
      try {
        const paced = createHandler(
          testDeps({
            env: { ...envOf(deps), RESEND_API_URL: `http://127.0.0.1:${proxy.addr.port}` },
            clock: deps.clock,
          }),
        );
        await queueWelcomes(3);
        const startedAt = performance.now();
        const res = await call(paced, "email-dispatch", { method: "POST", apiKey: testSecretKey });
        const elapsedMs = performance.now() - startedAt;
        assert.deepEqual(res.body, { sent: 3, retried: 0, failed: 0 });
        // Two sends in flight use up the window; the third waits for the reset.
        assert.ok(elapsedMs >= 900, `took ${elapsedMs} ms`);
        assert.equal(resend.mailbox().length, 3);
      } finally {
        await proxy.shutdown();
      }
    });
  },
);

dbTest(
  "a row whose last permitted attempt never reported back is failed by the next claim",
  async () => {
    await withBed(async ({ resend, dispatch, clock }) => {
      const [email] = await queueWelcomes(1);
      await testSql()`
      update identity.email_outbox set attempts = identity.policy('email_max_attempts'),
        next_attempt_at = ${clock.now()}, last_error = '500 internal_server_error'
      where id = ${email.id}`;
      assert.deepEqual((await dispatch()).body, { sent: 0, retried: 0, failed: 1 });
      const row = await outboxRow(email.id);
      assert.equal(row.status, "failed");
      assert.match(
        row.last_error,
        /^no result from attempt 8 .*; before: 500 internal_server_error$/,
      );
      assert.equal(resend.requests(), 0);
    });
  },
);

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

dbTest("two concurrent dispatchers send each row exactly once (2 × 20 rows)", async () => {
  await withBed(async ({ resend, deps }) => {
    const second = createHandler(testDeps({ env: envOf(deps), clock: deps.clock }));
    const first = createHandler(deps);
    const run = (handler: typeof first) =>
      call(handler, "email-dispatch", { method: "POST", apiKey: testSecretKey });
    const queued: QueuedEmail[] = [];
    for (let round = 0; round < 2; round++) {
      queued.push(...await queueWelcomes(20));
      const answers = await Promise.all([run(first), run(second)]);
      assert.ok(answers.every((a) => a.status === 200));
      assert.equal(answers[0].body.sent + answers[1].body.sent, 20);
    }
    assertSentOnce(resend, queued);
  });
});

dbTest("five concurrent dispatchers over several batches send each row exactly once", async () => {
  await withBed(async ({ resend, deps }) => {
    const queued = await queueWelcomes(230);
    const handlers = Array.from(
      { length: 5 },
      () => createHandler(testDeps({ env: envOf(deps), clock: deps.clock })),
    );
    const answers = await Promise.all(
      handlers.map((h) => call(h, "email-dispatch", { method: "POST", apiKey: testSecretKey })),
    );
    assert.equal(answers.reduce((sum, a) => sum + a.body.sent, 0), queued.length);
    assertSentOnce(resend, queued);
  });
});

function envOf(deps: TestDeps): Env {
  const email = deps.config.email.ok ? deps.config.email.value : assert.fail("email config");
  return {
    RESEND_API_KEY: email.resendApiKey,
    RESEND_API_URL: email.resendApiUrl,
    EMAIL_FROM: email.from,
    SITE_URL: email.siteUrl,
  };
}

/** Every queued row was POSTed exactly once (not merely deduplicated by Resend) and is sent. */
function assertSentOnce(resend: ResendEmulator, queued: QueuedEmail[]): void {
  assert.equal(resend.requests(), queued.length);
  const keys = resend.mailbox().map((m) => m.idempotencyKey).sort();
  assert.deepEqual(keys, queued.map((q) => q.id).sort());
}

// ---------------------------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------------------------

dbTest("names with markup reach the email escaped, from sign-up to the mailbox", async () => {
  await withBed(async ({ resend, dispatch }) => {
    const script = `<script>alert("x")</script>`;
    const [person] = await testSql()`
      insert into identity.person (email, display_name)
      values (${`escape.${crypto.randomUUID().slice(0, 8)}@example.test`}, ${script})
      returning id, email`;
    // Provisioning names the person's workspace after them and queues the welcome email.
    await testSql()`select identity.provision_person(${person.id}, ${person.email}, true, ${script}, now())`;
    const [row] = await testSql()`
      select id, payload from identity.email_outbox where person_id = ${person.id}`;
    assert.equal(row.payload.workspace_name, script);
    await testSql()`
      update identity.email_outbox
      set payload = payload || ${testSql().json({ display_name: `<img src=x onerror=alert(1)>` })}
      where id = ${row.id}`;

    assert.deepEqual((await dispatch()).body, { sent: 1, retried: 0, failed: 0 });
    const [email] = resend.mailbox();
    assert.ok(!/<script|<img/i.test(email.html ?? ""), email.html);
    assert.ok(email.html?.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert.ok(email.html?.includes("&lt;img src=x onerror=alert(1)&gt;"));
    // Subject and text are plain text: the name is shown as typed, on one line.
    assert.equal(email.subject, `Welcome to ${script}`);
    assert.ok(email.text?.includes(`Hi <img src=x onerror=alert(1)>,`));
  });
});

dbTest(
  "an invitation email, to an address with no person yet, is sent with its link and names escaped",
  async () => {
    await withBed(async ({ resend, dispatch }) => {
      const to = `invitee.${crypto.randomUUID().slice(0, 8)}@example.test`;
      const invitationId = crypto.randomUUID();
      const [row] = await testSql()`
      insert into identity.email_outbox (to_email, template, status, payload)
      values (${to}, 'invitation', 'ready', ${
        testSql().json({
          invitation_id: invitationId,
          workspace_name: `<b>Acme</b> & "friends"`,
          inviter_display_name: `<script>alert(1)</script>`,
          role: "admin",
          expires_at: "2030-03-05T14:05:00Z",
        })
      })
      returning id`;
      assert.deepEqual((await dispatch()).body, { sent: 1, retried: 0, failed: 0 });
      const [email] = resend.mailbox();
      assert.deepEqual(email.to, [to]);
      assert.equal(email.idempotencyKey, row.id);
      assert.ok(!/<script|<b>/i.test(email.html ?? ""), email.html);
      assert.ok(email.html?.includes("&lt;b&gt;Acme&lt;/b&gt; &amp; &quot;friends&quot;"));
      assert.ok(email.html?.includes(`href="${siteUrl}/?invitation=${invitationId}"`));
      assert.ok(
        email.text?.includes(`Accept the invitation: ${siteUrl}/?invitation=${invitationId}`),
      );
    });
  },
);

// ---------------------------------------------------------------------------------------------
// Configuration and callers
// ---------------------------------------------------------------------------------------------

for (const variable of ["RESEND_API_KEY", "EMAIL_FROM", "SITE_URL"]) {
  dbTest(
    `without ${variable} email-dispatch answers 503 EMAIL_NOT_CONFIGURED and the rows wait`,
    async () => {
      await withBed(async ({ resend, dispatch }) => {
        const [email] = await queueWelcomes(1);
        const res = await dispatch();
        assert.equal(res.status, 503);
        assert.equal(res.body.code, "EMAIL_NOT_CONFIGURED");
        assert.match(res.body.message, new RegExp(`${variable} is missing`));
        assert.equal(resend.requests(), 0);
        const row = await outboxRow(email.id);
        assert.equal(row.status, "ready");
        assert.equal(row.attempts, 0);
      }, { env: { [variable]: "" } });
    },
  );
}

Deno.test("EMAIL_FROM takes addr@domain or Name <addr@domain>, and nothing that could smuggle a header", () => {
  const emailFeature = (value: string) =>
    loadConfig({ RESEND_API_KEY: "re_x", SITE_URL: siteUrl, EMAIL_FROM: value }).email;
  for (
    const good of ["no-reply@acme.test", "Acme <no-reply@acme.test>", '"Acme, Inc." <a@acme.test>']
  ) {
    assert.equal(emailFeature(good).ok, true, good);
  }
  for (
    const bad of [
      "no-reply",
      "no-reply@localhost",
      "Acme <no-reply@acme.test",
      "a@acme.test, b@acme.test",
      "Acme\r\nBcc: x@evil.test <a@acme.test>",
      "a@acme.test\nBcc: x@evil.test",
    ]
  ) {
    const feature = emailFeature(bad);
    assert.equal(feature.ok, false, JSON.stringify(bad));
    assert.equal(!feature.ok && feature.variable, "EMAIL_FROM");
  }
  const defaults =
    loadConfig({ RESEND_API_KEY: "re_x", SITE_URL: siteUrl, EMAIL_FROM: from }).email;
  assert.equal(defaults.ok && defaults.value.resendApiUrl, "https://api.resend.com");
});

dbTest("a malformed EMAIL_FROM is 503 naming the variable, never its value", async () => {
  const value = "Platform no-reply at platform";
  await withBed(async ({ dispatch, resend }) => {
    await queueWelcomes(1);
    const res = await dispatch();
    assert.equal(res.status, 503);
    assert.equal(res.body.code, "EMAIL_NOT_CONFIGURED");
    assert.match(res.body.message, /EMAIL_FROM is malformed/);
    assert.ok(!res.body.message.includes(value));
    assert.equal(resend.requests(), 0);
  }, { env: { EMAIL_FROM: value } });
});

dbTest(
  "an API key Resend refuses is 503 naming RESEND_API_KEY, and no row spends an attempt",
  async () => {
    await withBed(async ({ dispatch, resend, clock }) => {
      const emails = await queueWelcomes(3);
      const res = await dispatch();
      assert.equal(res.status, 503);
      assert.equal(res.body.code, "EMAIL_NOT_CONFIGURED");
      assert.match(res.body.message, /RESEND_API_KEY was refused by Resend/);
      assert.ok(!res.body.message.includes("re_revoked"));
      assert.ok(resend.requests() >= 1 && resend.requests() <= 2);
      for (const email of emails) {
        const row = await outboxRow(email.id);
        assert.equal(row.status, "ready");
        assert.equal(row.attempts, 0);
        assert.ok(row.next_attempt_at === null || row.next_attempt_at <= clock.now());
      }
    }, { env: { RESEND_API_KEY: "re_revoked_key_0123456789" } });
  },
);

dbTest(
  "email-dispatch refuses callers without a secret key, and sends nothing for them",
  async () => {
    await withBed(async ({ dispatch, resend, deps }) => {
      const [email] = await queueWelcomes(1);
      for (
        const apiKey of [null, testPublishableKey, "sb_secret_not_ours_0123456789abcdefghijkl"]
      ) {
        const res = await dispatch(apiKey);
        assert.equal(res.status, 401, String(apiKey));
        assert.equal(res.body.code, "INVALID_API_KEY");
      }
      const bearer = await call(createHandler(deps), "email-dispatch", {
        method: "POST",
        apiKey: null,
        headers: { authorization: `Bearer ${testPublishableKey}` },
      });
      assert.equal(bearer.status, 401);
      assert.equal(resend.requests(), 0);
      assert.equal((await outboxRow(email.id)).attempts, 0);

      const get = await call(createHandler(deps), "email-dispatch", { apiKey: testSecretKey });
      assert.equal(get.status, 405);
      assert.equal(get.headers.get("allow"), "POST");
    });
  },
);

dbTest("email-dispatch never logs addresses or keys", async () => {
  await withBed(async ({ dispatch, resend, deps }) => {
    const emails = await queueWelcomes(3);
    resend.failNext({ status: 422 });
    await dispatch();
    const logs = JSON.stringify(deps.logs);
    assert.ok(deps.logs.some((line) => line.event === "email_sent"));
    assert.ok(deps.logs.some((line) => line.event === "email_failed"));
    for (const secret of [resend.apiKey, testSecretKey, ...emails.map((e) => e.to)]) {
      assert.ok(!logs.includes(secret), secret);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Scheduling: pg_cron + pg_net + Vault
// ---------------------------------------------------------------------------------------------

class Rollback extends Error {}

dbTest("on plain Postgres the email dispatch schedule is not installed", async () => {
  const [{ result }] = await testSql()`select identity.install_email_dispatch() as result`;
  assert.match(result, /^skipped: /);
  const [{ cron }] = await testSql()`select to_regnamespace('cron') is not null as cron`;
  assert.equal(cron, false);
  const triggers = await testSql()`
    select tgname from pg_trigger
    where tgrelid = 'identity.email_outbox'::regclass and not tgisinternal`;
  assert.deepEqual([...triggers], []);
});

dbTest(
  "where pg_cron, pg_net and Vault exist, a job calls email-dispatch every minute with the Vault key",
  async () => {
    await withBed(async ({ deps, resend }) => {
      const url = "https://project.supabase.test/functions/v1/email-dispatch";
      type Sent = { url: string; body: unknown; headers: Record<string, string>; timeout: number };
      let jobs: { jobname: string; schedule: string; command: string }[] = [];
      let fromCron: Sent[] = [];
      let afterInsert: Sent[] = [];
      let afterClaim: Sent[] = [];
      let afterConfirmation: Sent[] = [];
      let withoutSecrets: unknown = "not run";
      let installedTwice = "";
      await testSql().begin(async (tx) => {
        // What a Supabase project with pg_cron, pg_net and Vault has, reduced to what is called.
        await tx.unsafe(`
        create schema cron;
        create table cron.job (jobid bigserial primary key, jobname text unique, schedule text, command text);
        create function cron.schedule(job_name text, schedule text, command text) returns bigint
          language sql as $$
            insert into cron.job (jobname, schedule, command) values (job_name, schedule, command)
            on conflict (jobname) do update set schedule = excluded.schedule, command = excluded.command
            returning jobid $$;
        create schema net;
        create table net.sent (id bigserial, url text, body jsonb, headers jsonb, timeout integer);
        create function net.http_post(
          url text, body jsonb, params jsonb, headers jsonb, timeout_milliseconds integer
        ) returns bigint language sql
          as $$ insert into net.sent (url, body, headers, timeout)
                values (url, body, headers, timeout_milliseconds) returning id $$;
        create schema vault;
        create table vault.decrypted_secrets (name text, decrypted_secret text);`);
        const [{ installed }] = await tx`select identity.install_email_dispatch() as installed`;
        assert.equal(installed, "installed");

        // Without the secrets nothing is sent, and nothing fails.
        [{ result: withoutSecrets }] = await tx`select identity.request_email_dispatch() as result`;
        await tx`
        insert into vault.decrypted_secrets values
          ('email_dispatch_url', ${url}), ('email_dispatch_api_key', ${testSecretKey})`;

        jobs = await tx`select jobname, schedule, command from cron.job` as unknown as typeof jobs;
        await tx.unsafe(jobs[0].command);
        fromCron = await tx`select url, body, headers, timeout from net.sent order by id` as never;

        // Rows becoming ready ask for one dispatch right away, per statement.
        await tx`delete from net.sent`;
        const sql = tx as unknown as ReturnType<typeof testSql>;
        const run = crypto.randomUUID().slice(0, 8);
        const people = await sql`
        insert into identity.person (email)
        select 'cron.' || ${run} || '.' || i || '@example.test' from generate_series(1, 4) i
        returning id, email`;
        await sql`
        insert into identity.email_outbox (person_id, to_email, template, status)
        select id, email, 'welcome', 'ready' from identity.person
        where id in ${sql(people.slice(0, 3).map((p) => p.id))}`;
        afterInsert = await tx`select url, body, headers, timeout from net.sent` as never;
        const [waiting] = await sql`
        insert into identity.email_outbox (person_id, to_email, template, status)
        values (${people[3].id}, ${people[3].email}, 'welcome', 'awaiting_confirmation')
        returning id`;
        await tx`update identity.email_outbox set status = 'ready' where id = ${waiting.id}`;
        afterConfirmation = await tx`select url from net.sent` as never;

        // The dispatcher's own updates (claiming, recording, releasing) ask for nothing.
        await tx`delete from net.sent`;
        const [{ claimed }] = await tx`select identity.claim_due_emails(now()) as claimed`;
        await tx`
        select identity.record_email_outcomes(${
          sql.json(claimed.emails.map((e: { id: string }) => ({ id: e.id, outcome: "release" })))
        }, now())`;
        afterClaim = await tx`select url from net.sent` as never;

        [{ installed: installedTwice }] =
          await tx`select identity.install_email_dispatch() as installed`;
        jobs = await tx`select jobname, schedule, command from cron.job` as unknown as typeof jobs;
        throw new Rollback();
      }).catch((error) => {
        if (!(error instanceof Rollback)) throw error;
      });

      assert.equal(withoutSecrets, null);
      assert.equal(installedTwice, "installed");
      assert.deepEqual(jobs.map((j) => [j.jobname, j.schedule]), [["email-dispatch", "* * * * *"]]);
      assert.ok(!jobs[0].command.includes(testSecretKey), "the key is read from Vault, not stored");
      assert.equal(fromCron.length, 1);
      assert.equal(fromCron[0].url, url);
      assert.equal(fromCron[0].headers.apikey, testSecretKey);
      assert.ok(fromCron[0].timeout >= 30_000);
      assert.equal(afterInsert.length, 1);
      assert.equal(afterConfirmation.length, 2);
      assert.equal(afterClaim.length, 0);

      // What pg_net would send is what email-dispatch accepts.
      await queueWelcomes(1);
      const res = await call(createHandler(deps), "email-dispatch", {
        method: "POST",
        apiKey: null,
        headers: fromCron[0].headers,
        body: JSON.stringify(fromCron[0].body),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { sent: 1, retried: 0, failed: 0 });
      assert.equal(resend.mailbox().length, 1);
    });
  },
);
