/**
 * otp-send against the test database and the local Stytch emulator, through the real `stytch`
 * SDK: what a client sees (status, code, Retry-After), what Stytch saw, and which rows were written.
 * The send limits of SPEC §13.2: per (email, IP) one per 60 s and 5 per hour, per email 15 per
 * hour, per IP 30 per hour, an email's `+tag` ignored.
 */
import { personsAndSessions } from "./support/person.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { StytchEmulator, StytchEmulatorOptions } from "../local/emulators/stytch.ts";
import type { Env } from "../supabase/functions/_shared/config.ts";
import type { StytchOtpOptions } from "../supabase/functions/_shared/stytch.ts";
import { createHandler } from "../supabase/functions/otp-send/handler.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { TestClock, testDeps } from "./support/deps.ts";
import { stytchEnv, stytchTestbed } from "./support/stytch.ts";
import { call, type CallOptions, randomIp } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

interface Setup {
  stytch: StytchEmulator;
  clock: TestClock;
  handler: ReturnType<typeof createHandler>;
  logs: Record<string, unknown>[];
  [Symbol.asyncDispose](): Promise<void>;
}

/** A Stytch emulator and an otp-send handler pointed at it, sharing one test clock. */
async function setup(
  options: { emulator?: StytchEmulatorOptions; env?: Env; stytch?: StytchOtpOptions } = {},
): Promise<Setup> {
  const { stytch, clock, deps, logs } = await stytchTestbed(options);
  const handler = createHandler(deps);
  return { stytch, clock, handler, logs, [Symbol.asyncDispose]: () => stytch.close() };
}

/** Calls otp-send as a page would, from `ip` (the hop the platform's proxy adds). */
function sendRequest(handler: Setup["handler"], ip: string, options: CallOptions) {
  return call(handler, "otp-send", {
    ...options,
    headers: { "x-forwarded-for": ip, ...options.headers },
  });
}

function send(
  handler: Setup["handler"],
  email: string,
  ip: string = randomIp(),
  options: CallOptions = {},
) {
  return sendRequest(handler, ip, { body: { email }, ...options });
}

function sha256(data: string | Buffer): Buffer {
  return createHash("sha256").update(data).digest();
}

/** The key an email's limits are stored under: trimmed, lower-cased, without its `+tag`. */
function emailKey(email: string): Buffer {
  return sha256(email.trim().toLowerCase().replace(/^([^+@]*)\+[^@]*(@[^@]*)$/, "$1$2"));
}

/** The key of the pair (email, IP): SHA-256 of the email's key and the IP's key. */
function pairKey(email: string, ip: string): Buffer {
  return sha256(Buffer.concat([emailKey(email), sha256(ip)]));
}

/** The send times recorded for an email, an IP, or the pair (stored under SHA-256 keys only). */
async function recordedSends(
  scope: "email" | "ip" | "email_ip",
  value: string,
  ip = "",
): Promise<Date[] | null> {
  const key = scope === "email"
    ? emailKey(value)
    : scope === "ip"
    ? sha256(value)
    : pairKey(value, ip);
  const [row] = await testSql()`
    select sent_at from identity.otp_send_limit where scope = ${scope} and key_hash = ${key}`;
  return row ? row.sent_at : null;
}

dbTest("otp-send sends a code and answers only the method_id", async () => {
  await using s = await setup();
  const email = uniqueEmail("send");
  const ip = randomIp();

  const res = await send(s.handler, email, ip);

  assert.equal(res.status, 200);
  assert.deepEqual(Object.keys(res.body), ["method_id"]);
  assert.match(res.body.method_id, /^email-test-[0-9a-f-]{36}$/);
  assert.match(s.stytch.codeFor(res.body.method_id) ?? "", /^\d{6}$/);
  assert.equal(s.stytch.lastCodeFor(email), s.stytch.codeFor(res.body.method_id));
  assert.deepEqual(s.stytch.calls, { loginOrCreate: 1, authenticate: 0 });
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.ok(res.headers.get("x-request-id"));
  assert.deepEqual(await recordedSends("email", email), [s.clock.now()]);
  assert.deepEqual(await recordedSends("ip", ip), [s.clock.now()]);
  assert.deepEqual(await recordedSends("email_ip", email, ip), [s.clock.now()]);
  assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });
});

dbTest("otp-send stores the email and IP only as SHA-256 hashes", async () => {
  await using s = await setup();
  const email = uniqueEmail("hashed");
  const ip = randomIp();
  assert.equal((await send(s.handler, email, ip)).status, 200);

  const rows = await testSql()`
    select scope, key_hash from identity.otp_send_limit
    where key_hash in (${sha256(email)}, ${sha256(ip)}, ${pairKey(email, ip)}) order by scope`;
  assert.deepEqual(rows.map((r) => r.scope), ["email", "email_ip", "ip"]);
  const [{ plain }] = await testSql()`
    select count(*)::int as plain from identity.otp_send_limit
    where position(convert_to(${email}, 'UTF8') in key_hash) > 0
       or position(convert_to(${ip}, 'UTF8') in key_hash) > 0`;
  assert.equal(plain, 0);
});

dbTest("otp-send answers alike whether or not the person exists", async () => {
  await using s = await setup();
  const known = uniqueEmail("known");
  await signInForTest(testDeps({ clock: s.clock }), { email: known });
  const unknown = uniqueEmail("unknown");

  const forKnown = await send(s.handler, known);
  const forUnknown = await send(s.handler, unknown);

  assert.equal(forKnown.status, 200);
  assert.equal(forUnknown.status, 200);
  assert.deepEqual(Object.keys(forKnown.body), Object.keys(forUnknown.body));
  const headerNames = (h: Headers) => [...h.keys()].filter((k) => k !== "content-length");
  assert.deepEqual(headerNames(forKnown.headers), headerNames(forUnknown.headers));
  assert.deepEqual(s.stytch.calls, { loginOrCreate: 2, authenticate: 0 });
});

dbTest(
  "a second code for one email from one IP within 60 s is 429 with Retry-After, Stytch not called",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("minute");
    const ip = randomIp();
    assert.equal((await send(s.handler, email, ip)).status, 200);

    s.clock.advanceSeconds(45);
    const early = await send(s.handler, email, ip);
    assert.equal(early.status, 429);
    assert.equal(early.body.code, "RATE_LIMITED");
    assert.equal(early.headers.get("retry-after"), "15");
    assert.equal(s.stytch.calls.loginOrCreate, 1);

    s.clock.advanceSeconds(14.5);
    assert.equal((await send(s.handler, email, ip)).headers.get("retry-after"), "1");

    s.clock.advanceSeconds(0.5);
    const onTime = await send(s.handler, email, ip);
    assert.equal(onTime.status, 200);
    assert.equal(s.stytch.calls.loginOrCreate, 2);
  },
);

dbTest(
  "the 60 s gap holds one IP only: the email is sent a code from another IP at once",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("gap-pair");
    assert.equal((await send(s.handler, email, randomIp())).status, 200);
    const other = await send(s.handler, email, randomIp());
    assert.equal(other.status, 200);
    assert.equal(s.stytch.calls.loginOrCreate, 2);
  },
);

dbTest(
  "the 6th code for one email from one IP within an hour waits until the first leaves the hour",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("hour");
    const ip = randomIp();
    for (let i = 0; i < 5; i++) {
      if (i) s.clock.advanceSeconds(60);
      assert.equal((await send(s.handler, email, ip)).status, 200, `send ${i + 1}`);
    }
    s.clock.advanceSeconds(60); // 300 s after the first send

    const sixth = await send(s.handler, email, ip);
    assert.equal(sixth.status, 429);
    assert.equal(sixth.body.code, "RATE_LIMITED");
    assert.equal(sixth.headers.get("retry-after"), "3300");
    assert.equal(s.stytch.calls.loginOrCreate, 5);
    assert.equal((await send(s.handler, email, randomIp())).status, 200, "another IP is not held");

    s.clock.advanceSeconds(3299);
    assert.equal((await send(s.handler, email, ip)).headers.get("retry-after"), "1");
    s.clock.advanceSeconds(1);
    assert.equal((await send(s.handler, email, ip)).status, 200);
    assert.equal(s.stytch.calls.loginOrCreate, 7);
  },
);

dbTest(
  "the 16th code for one email within an hour is refused from any IP, Stytch not called",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("email-hour");
    for (let i = 0; i < 15; i++) {
      if (i) s.clock.advanceSeconds(10);
      assert.equal((await send(s.handler, email, randomIp())).status, 200, `send ${i + 1}`);
    }

    const refused = await send(s.handler, email, randomIp());
    assert.equal(refused.status, 429);
    assert.equal(refused.body.code, "RATE_LIMITED");
    assert.equal(refused.headers.get("retry-after"), String(3600 - 140));
    assert.equal(s.stytch.calls.loginOrCreate, 15);
    assert.equal((await recordedSends("email", email))?.length, 15);

    s.clock.advanceSeconds(3600 - 140);
    assert.equal((await send(s.handler, email, randomIp())).status, 200);
    assert.equal(s.stytch.calls.loginOrCreate, 16);
  },
);

dbTest(
  "the 31st code from one IP within an hour is refused for any email, not for other IPs",
  async () => {
    await using s = await setup();
    const ip = randomIp();
    for (let i = 0; i < 30; i++) {
      assert.equal((await send(s.handler, uniqueEmail("ip"), ip)).status, 200, `send ${i + 1}`);
    }
    const email = uniqueEmail("ip31");

    const refused = await send(s.handler, email, ip);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.code, "RATE_LIMITED");
    assert.equal(refused.headers.get("retry-after"), "3600");
    assert.equal(s.stytch.calls.loginOrCreate, 30);
    assert.equal(await recordedSends("email", email), null, "a refused send records nothing");

    assert.equal((await send(s.handler, email, randomIp())).status, 200);
    s.clock.advanceSeconds(3600);
    assert.equal((await send(s.handler, uniqueEmail("ip"), ip)).status, 200);
  },
);

dbTest(
  "the IP limit keys on the last x-forwarded-for hop, the one the platform's proxy adds",
  async () => {
    await using s = await setup();
    const ip = randomIp();
    for (let i = 0; i < 30; i++) {
      // The client writes whatever first hop it likes; the proxy appends the address it saw.
      const res = await send(s.handler, uniqueEmail("hop"), `172.16.0.${i}, ${ip}`);
      assert.equal(res.status, 200);
    }
    assert.equal((await send(s.handler, uniqueEmail("hop"), ` ${ip} `)).status, 429);
    assert.equal((await send(s.handler, uniqueEmail("hop"), `${ip}, 172.16.0.1`)).status, 200);
  },
);

dbTest("the email limits key on the trimmed, lower-cased email", async () => {
  await using s = await setup();
  const email = uniqueEmail("case");
  const ip = randomIp();
  assert.equal((await send(s.handler, `  ${email.toUpperCase()} `, ip)).status, 200);
  const again = await send(s.handler, email, ip);
  assert.equal(again.status, 429);
  assert.equal(again.headers.get("retry-after"), "60");
});

dbTest("an email's +tag is ignored: one IP gets no fresh budget from aliases", async () => {
  await using s = await setup();
  const [local, domain] = uniqueEmail("tag").split("@");
  const ip = randomIp();
  assert.equal((await send(s.handler, `${local}+one@${domain}`, ip)).status, 200);

  const alias = await send(s.handler, `${local}+two@${domain}`, ip);
  assert.equal(alias.status, 429);
  assert.equal(alias.headers.get("retry-after"), "60");
  const plain = await send(s.handler, `${local}@${domain}`, ip);
  assert.equal(plain.status, 429);
  assert.equal(s.stytch.calls.loginOrCreate, 1);
  assert.equal((await recordedSends("email", `${local}@${domain}`))?.length, 1);
  assert.equal((await recordedSends("email_ip", `${local}@${domain}`, ip))?.length, 1);
});

dbTest(
  "an email's +tag is ignored: aliases from many IPs share the email's 15 an hour",
  async () => {
    await using s = await setup();
    const [local, domain] = uniqueEmail("tags").split("@");
    for (let i = 0; i < 15; i++) {
      const res = await send(s.handler, `${local}+${i}@${domain}`, randomIp());
      assert.equal(res.status, 200, `alias ${i}`);
    }
    const sixteenth = await send(s.handler, `${local.toUpperCase()}+x+y@${domain}`, randomIp());
    assert.equal(sixteenth.status, 429);
    assert.equal(sixteenth.body.code, "RATE_LIMITED");
    assert.equal(s.stytch.calls.loginOrCreate, 15);

    // Another address of the same domain is another inbox.
    assert.equal((await send(s.handler, `${local}x@${domain}`, randomIp())).status, 200);
  },
);

dbTest("a refused send does not push the wait further out", async () => {
  await using s = await setup();
  const email = uniqueEmail("hammer");
  const ip = randomIp();
  assert.equal((await send(s.handler, email, ip)).status, 200);
  for (let i = 0; i < 5; i++) {
    s.clock.advanceSeconds(10);
    assert.equal((await send(s.handler, email, ip)).status, 429);
  }
  s.clock.advanceSeconds(10);
  assert.equal((await send(s.handler, email, ip)).status, 200);
  assert.equal((await recordedSends("email", email))?.length, 2);
  assert.equal((await recordedSends("email_ip", email, ip))?.length, 2);
});

dbTest("limits hold across function instances (another process, a restart)", async () => {
  await using s = await setup();
  const email = uniqueEmail("restart");
  const ip = randomIp();
  assert.equal((await send(s.handler, email, ip)).status, 200);
  const restarted = createHandler(testDeps({ env: stytchEnv(s.stytch), clock: s.clock }));
  const res = await send(restarted, email, ip);
  assert.equal(res.status, 429);
  assert.equal(res.body.code, "RATE_LIMITED");
  assert.equal(s.stytch.calls.loginOrCreate, 1);
});

dbTest("concurrent sends for one email from one IP reach Stytch once", async () => {
  await using s = await setup();
  const email = uniqueEmail("burst");
  const ip = randomIp();
  const results = await Promise.all(Array.from({ length: 10 }, () => send(s.handler, email, ip)));
  assert.deepEqual(results.map((r) => r.status).sort(), [200, ...Array(9).fill(429)]);
  assert.equal(s.stytch.calls.loginOrCreate, 1);
  assert.equal((await recordedSends("email", email))?.length, 1);
});

dbTest("concurrent sends for one email from 25 IPs reach Stytch 15 times", async () => {
  await using s = await setup();
  const email = uniqueEmail("burst-ips");
  const results = await Promise.all(
    Array.from({ length: 25 }, () => send(s.handler, email, randomIp())),
  );
  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [...Array(15).fill(200), ...Array(10).fill(429)]);
  assert.equal(s.stytch.calls.loginOrCreate, 15);
  assert.equal((await recordedSends("email", email))?.length, 15);
});

dbTest("each send clears a bounded batch of limit rows idle for over an hour", async () => {
  await using s = await setup();
  assert.equal((await send(s.handler, uniqueEmail("stale"))).status, 200);
  s.clock.advanceSeconds(2 * 3600);
  const idle = async () => {
    const [row] = await testSql()`
      select count(*)::int as n from identity.otp_send_limit
      where updated_at < ${s.clock.now()}::timestamptz - interval '1 hour'`;
    return row.n as number;
  };
  const before = await idle();
  assert.ok(before >= 2);
  assert.equal((await send(s.handler, uniqueEmail("fresh"))).status, 200);
  const [{ batch }] = await testSql()`select identity.policy('sweep_batch_rows') as batch`;
  assert.equal(await idle(), Math.max(0, before - batch));
});

dbTest("otp-send refuses bad input with 400, 413 or 415 and writes nothing", async () => {
  await using s = await setup();
  const jsonType = { "content-type": "application/json" };
  const cases: [string, CallOptions, number, string, RegExp][] = [
    ["not an email", { body: { email: "not-an-email" } }, 400, "VALIDATION_FAILED", /^email /],
    [
      "email over 254 characters",
      { body: { email: `${"a".repeat(243)}@example.test` } },
      400,
      "VALIDATION_FAILED",
      /^email .*254/,
    ],
    ["missing email", { body: { name: "Ada" } }, 400, "VALIDATION_FAILED", /^email is required$/],
    ["email of the wrong type", { body: { email: 42 } }, 400, "VALIDATION_FAILED", /^email /],
    ["a JSON array", { body: "[]", headers: jsonType }, 400, "VALIDATION_FAILED", /JSON object/],
    [
      "malformed JSON",
      { body: '{"email": ', headers: jsonType },
      400,
      "VALIDATION_FAILED",
      /not valid JSON/,
    ],
    [
      "70 KiB body",
      { body: { email: uniqueEmail(), padding: "x".repeat(70 * 1024) } },
      413,
      "PAYLOAD_TOO_LARGE",
      /64|65536/,
    ],
    [
      "form body",
      {
        body: "email=a%40b.test",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      },
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      /application\/json/,
    ],
  ];
  for (const [name, options, status, code, message] of cases) {
    const ip = randomIp();
    const res = await sendRequest(s.handler, ip, options);
    assert.equal(res.status, status, name);
    assert.equal(res.body.code, code, name);
    assert.match(res.body.message, message, name);
    assert.equal(await recordedSends("ip", ip), null, `${name}: nothing recorded`);
  }
  assert.deepEqual(s.stytch.calls, { loginOrCreate: 0, authenticate: 0 });
});

dbTest("otp-send ignores unknown extra fields", async () => {
  await using s = await setup();
  const res = await sendRequest(s.handler, randomIp(), {
    body: { email: uniqueEmail("extra"), locale: "fr", admin: true },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(Object.keys(res.body), ["method_id"]);
});

dbTest("otp-send answers 405 with Allow to other methods and CORS preflight with 204", async () => {
  await using s = await setup();
  const get = await call(s.handler, "otp-send", { method: "GET" });
  assert.equal(get.status, 405);
  assert.equal(get.body.code, "METHOD_NOT_ALLOWED");
  assert.equal(get.headers.get("allow"), "POST");

  const preflight = await call(s.handler, "otp-send", { method: "OPTIONS" });
  assert.equal(preflight.status, 204);
  assert.equal(
    preflight.headers.get("access-control-allow-headers"),
    "authorization, x-client-info, apikey, content-type",
  );
  assert.equal(s.stytch.calls.loginOrCreate, 0);
});

dbTest("otp-send is 503 STYTCH_NOT_CONFIGURED naming the variable when Stytch is off", async () => {
  const missing = await send(createHandler(testDeps()), uniqueEmail());
  assert.equal(missing.status, 503);
  assert.equal(missing.body.code, "STYTCH_NOT_CONFIGURED");
  assert.match(missing.body.message, /STYTCH_PROJECT_ID is missing/);

  const malformed = await send(
    createHandler(testDeps({
      env: {
        STYTCH_PROJECT_ID: "project-test-1",
        STYTCH_SECRET: "secret-never-shown",
        STYTCH_API_URL: "ftp://secret-never-shown",
      },
    })),
    uniqueEmail(),
  );
  assert.equal(malformed.status, 503);
  assert.equal(malformed.body.code, "STYTCH_NOT_CONFIGURED");
  assert.match(malformed.body.message, /STYTCH_API_URL is malformed/);
  assert.doesNotMatch(malformed.body.message, /secret-never-shown/);
});

for (
  const [kind, status, code] of [
    ["server_error", 502, "PROVIDER_ERROR"],
    ["garbage", 502, "PROVIDER_ERROR"],
    ["unexpected_json", 502, "PROVIDER_ERROR"],
    ["rate_limited", 429, "RATE_LIMITED"],
  ] as const
) {
  dbTest(`otp-send answers Stytch's ${kind} with ${status} ${code}`, async () => {
    await using s = await setup({ emulator: { failWith: { kind } } });
    const email = uniqueEmail(kind);
    const res = await send(s.handler, email);
    assert.equal(res.status, status);
    assert.equal(res.body.code, code);
    if (status === 429) assert.equal(res.headers.get("retry-after"), "60");
    assert.equal(s.stytch.calls.loginOrCreate, 1);
    assert.equal(s.logs.length, 1);
    assert.doesNotMatch(JSON.stringify(s.logs), new RegExp(email.split("@")[0]));
    assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });
  });
}

dbTest("otp-send is 502 within the timeout when Stytch does not answer", async () => {
  const timeoutMs = 300;
  await using s = await setup({
    emulator: { failWith: { kind: "hang" } },
    stytch: { timeoutMs },
  });
  const startedAt = performance.now();
  const res = await send(s.handler, uniqueEmail("hang"));
  const elapsedMs = performance.now() - startedAt;
  assert.equal(res.status, 502);
  assert.equal(res.body.code, "PROVIDER_ERROR");
  assert.ok(elapsedMs >= timeoutMs && elapsedMs < timeoutMs + 1500, `took ${elapsedMs} ms`);
  assert.equal(s.logs[0]?.detail, "timeout");
});

dbTest("otp-send is 502 when Stytch is down, and the send still counts", async () => {
  await using s = await setup();
  await s.stytch.close();
  const email = uniqueEmail("down");
  const res = await send(s.handler, email);
  assert.equal(res.status, 502);
  assert.equal(res.body.code, "PROVIDER_ERROR");
  assert.equal((await recordedSends("email", email))?.length, 1);
  assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });
});
