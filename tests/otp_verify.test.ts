/**
 * otp-verify against the test database and the local Stytch emulator, through the real `stytch`
 * SDK: the token a client receives, the person and session rows written (or not), the attempt
 * limits of SPEC §13.2 (per method_id and IP, per method_id, per IP, method_ids never handed out),
 * provider profiles (§13.8), and every way Stytch can fail.
 */
import { personsAndSessions } from "./support/person.ts";
import assert from "node:assert/strict";
import { decodeProtectedHeader, jwtVerify } from "jose";
import {
  startStytchEmulator,
  type StytchEmulator,
  type StytchEmulatorOptions,
} from "../local/emulators/stytch.ts";
import { createHash } from "node:crypto";
import type { Env } from "../supabase/functions/_shared/config.ts";
import { otpCodeSent } from "../supabase/functions/_shared/otp_limits.ts";
import type { StytchOtp, StytchOtpOptions } from "../supabase/functions/_shared/stytch.ts";
import { createHandler as createSendHandler } from "../supabase/functions/otp-send/handler.ts";
import { createHandler } from "../supabase/functions/otp-verify/handler.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { TestClock, testDeps, testJwtSecret, testSupabaseUrl } from "./support/deps.ts";
import { loggedStytchOtp, stytchEnv, stytchTestbed } from "./support/stytch.ts";
import { call, type CallOptions, type CallResult, randomIp } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

/** The attempt limits: the database's policy (SPEC §13.2). */
const [policy] = await testSql()`
  select identity.policy('otp_attempts_per_code') as "perCodeAndIp",
         identity.policy('otp_attempts_per_code_all_ips') as "perCode",
         identity.policy('otp_failed_verifies_per_ip') as "perIp",
         identity.policy('sweep_batch_rows') as "sweepBatch"`;
const maxAttemptsPerCode: number = policy.perCodeAndIp;

interface Setup {
  stytch: StytchEmulator;
  clock: TestClock;
  verify: ReturnType<typeof createHandler>;
  sendHandler: ReturnType<typeof createSendHandler>;
  logs: Record<string, unknown>[];
  [Symbol.asyncDispose](): Promise<void>;
}

/** A Stytch emulator, and otp-send and otp-verify pointed at it; one clock for all three. */
async function setup(
  options: { emulator?: StytchEmulatorOptions; env?: Env; stytch?: StytchOtpOptions } = {},
): Promise<Setup> {
  const { stytch, clock, deps, logs } = await stytchTestbed(options);
  const verify = createHandler(deps);
  const sendHandler = createSendHandler(deps);
  return { stytch, clock, verify, sendHandler, logs, [Symbol.asyncDispose]: () => stytch.close() };
}

/** Sends a code through otp-send and reads it from the emulator's "mailbox". */
async function sendCode(
  s: Pick<Setup, "sendHandler" | "stytch">,
  email: string,
  ip = randomIp(),
): Promise<{ methodId: string; code: string }> {
  const res = await call(s.sendHandler, "otp-send", {
    body: { email },
    headers: { "x-forwarded-for": ip },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const code = s.stytch.codeFor(res.body.method_id);
  assert.ok(code);
  return { methodId: res.body.method_id, code };
}

/** Calls otp-verify as a page would, from `ip` (a fresh one unless given). */
function verifyCode(
  handler: Setup["verify"],
  methodId: string,
  code: string,
  ip = randomIp(),
): Promise<CallResult> {
  return verifyRequest(handler, { body: { method_id: methodId, code } }, ip);
}

function verifyRequest(
  handler: Setup["verify"],
  options: CallOptions,
  ip = randomIp(),
): Promise<CallResult> {
  return call(handler, "otp-verify", {
    ...options,
    headers: { "x-forwarded-for": ip, ...options.headers },
  });
}

/** A six-digit code that differs from `code`. */
function otherCode(code: string, offset = 1): string {
  return String((Number(code) + offset) % 1_000_000).padStart(6, "0");
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Wrong codes counted against the method's current code, or null when it was never sent. */
async function attemptsOf(methodId: string): Promise<number | null> {
  const [row] = await testSql()`
    select cardinality(failed_ip_keys) as attempts from identity.otp_method
    where method_id = ${methodId}`;
  return row ? row.attempts : null;
}

/** Failed verifies counted for an IP in the window (stored under SHA-256 of the IP only). */
async function ipFailuresOf(ip: string): Promise<number> {
  const [row] = await testSql()`
    select cardinality(failed_at) as n from identity.otp_verify_failure
    where ip_key = ${sha256(ip)}`;
  return row ? row.n : 0;
}

/** The workspace a new person was given (provisioned inside identity.sign_in). */
async function ownedWorkspace(personId: string): Promise<string> {
  const rows = await testSql()`
    select workspace_id from identity.membership where person_id = ${personId} and role = 'owner'`;
  assert.equal(rows.length, 1);
  return rows[0].workspace_id;
}

const secretKey = new TextEncoder().encode(testJwtSecret);

dbTest(
  "otp-verify signs a new person in with a platform token (SPEC §5) and is_new_user",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("new");
    const { methodId, code } = await sendCode(s, email);

    const res = await verifyCode(s.verify, methodId, code);

    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.headers.get("cache-control"), "no-store");
    const body = res.body;
    assert.deepEqual(Object.keys(body).sort(), [
      "access_token",
      "expires_at",
      "expires_in",
      "is_new_user",
      "person",
      "refresh_token",
      "token_type",
    ]);
    assert.equal(body.token_type, "bearer");
    assert.equal(body.is_new_user, true);
    assert.equal(body.expires_in, 3600);
    const nowSeconds = Math.floor(s.clock.now().getTime() / 1000);
    assert.equal(body.expires_at, nowSeconds + 3600);
    assert.ok(body.refresh_token.length >= 43);
    assert.equal(body.person.email, email);
    assert.equal(body.person.display_name, null);

    assert.deepEqual(decodeProtectedHeader(body.access_token), { alg: "HS256", typ: "JWT" });
    const { payload } = await jwtVerify(body.access_token, secretKey, {
      algorithms: ["HS256"],
      issuer: `${testSupabaseUrl}/auth/v1`,
      audience: "authenticated",
      currentDate: s.clock.now(),
    });
    const [session] = await testSql()`
    select s.id, s.provider, s.amr_method, s.revoked_at, p.stytch_user_id, p.last_sign_in_at
    from identity.session s join identity.person p on p.id = s.person_id
    where p.id = ${body.person.id}`;
    const workspace = await ownedWorkspace(body.person.id);
    assert.deepEqual(payload, {
      iss: `${testSupabaseUrl}/auth/v1`,
      sub: body.person.id,
      aud: "authenticated",
      iat: nowSeconds,
      exp: nowSeconds + 3600,
      email,
      phone: "",
      role: "authenticated",
      aal: "aal1",
      amr: [{ method: "otp", timestamp: nowSeconds }],
      session_id: session.id,
      session_generation: 0,
      is_anonymous: false,
      app_metadata: {
        provider: "stytch",
        providers: ["stytch"],
        workspace_id: workspace,
        workspace_role: "owner",
      },
      user_metadata: {},
    });
    assert.equal(session.provider, "stytch");
    assert.equal(session.amr_method, "otp");
    assert.equal(session.revoked_at, null);
    assert.match(session.stytch_user_id, /^user-test-/);
    assert.deepEqual(session.last_sign_in_at, s.clock.now());
    assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 1 });
    assert.deepEqual(s.stytch.calls, { loginOrCreate: 1, authenticate: 1 });
  },
);

dbTest(
  "a person who first came through WorkOS keeps their id and gets is_new_user false",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("workos");
    const before = await signInForTest(testDeps({ clock: s.clock }), { email, provider: "workos" });
    const { methodId, code } = await sendCode(s, email);

    const res = await verifyCode(s.verify, methodId, code);

    assert.equal(res.status, 200);
    assert.equal(res.body.is_new_user, false);
    assert.equal(res.body.person.id, before.person.id);
    const { payload } = await jwtVerify(res.body.access_token, secretKey, {
      currentDate: s.clock.now(),
    });
    assert.equal(payload.sub, before.person.id);
    assert.deepEqual(payload.app_metadata, {
      provider: "stytch",
      providers: ["stytch", "workos"],
      workspace_id: await ownedWorkspace(before.person.id),
      workspace_role: "owner",
    });
    const [person] = await testSql()`
    select stytch_user_id, workos_user_id from identity.person where id = ${before.person.id}`;
    assert.match(person.stytch_user_id, /^user-test-/);
    assert.ok(person.workos_user_id);
    assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 2 });
  },
);

dbTest("signing in again with Stytch finds the same person by Stytch user id", async () => {
  await using s = await setup();
  const email = uniqueEmail("again");
  const first = await sendCode(s, email);
  const firstRes = await verifyCode(s.verify, first.methodId, first.code);
  s.clock.advanceSeconds(60);
  const second = await sendCode(s, email);
  const secondRes = await verifyCode(s.verify, second.methodId, second.code);

  assert.equal(secondRes.status, 200);
  assert.equal(firstRes.body.is_new_user, true);
  assert.equal(secondRes.body.is_new_user, false);
  assert.equal(secondRes.body.person.id, firstRes.body.person.id);
  assert.notEqual(secondRes.body.refresh_token, firstRes.body.refresh_token);
  assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 2 });
});

dbTest("a wrong code is 401 INVALID_CODE, counted as an attempt, and writes nothing", async () => {
  await using s = await setup();
  const email = uniqueEmail("wrong");
  const { methodId, code } = await sendCode(s, email);
  const ip = randomIp();

  const res = await verifyCode(s.verify, methodId, otherCode(code), ip);

  assert.equal(res.status, 401);
  assert.equal(res.body.code, "INVALID_CODE");
  assert.equal(await attemptsOf(methodId), 1);
  assert.equal(await ipFailuresOf(ip), 1);
  assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });
  assert.deepEqual(s.logs, [], "a wrong code is not a provider failure");
});

dbTest("an expired code is 401 INVALID_CODE and writes nothing", async () => {
  await using s = await setup();
  const email = uniqueEmail("expired");
  const { methodId, code } = await sendCode(s, email);
  s.clock.advanceSeconds(2 * 60); // Stytch's default code lifetime

  const res = await verifyCode(s.verify, methodId, code);

  assert.equal(res.status, 401);
  assert.equal(res.body.code, "INVALID_CODE");
  assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });
});

dbTest("a code that was already used is 401 INVALID_CODE", async () => {
  await using s = await setup();
  const email = uniqueEmail("used");
  const { methodId, code } = await sendCode(s, email);
  assert.equal((await verifyCode(s.verify, methodId, code)).status, 200);

  const replay = await verifyCode(s.verify, methodId, code);

  assert.equal(replay.status, 401);
  assert.equal(replay.body.code, "INVALID_CODE");
  assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 1 });
});

dbTest(
  "after 5 wrong codes from one IP even the right one is 429 TOO_MANY_ATTEMPTS there, Stytch not called",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("locked");
    const { methodId, code } = await sendCode(s, email);
    const ip = randomIp();
    for (let i = 1; i <= maxAttemptsPerCode; i++) {
      const res = await verifyCode(s.verify, methodId, otherCode(code, i), ip);
      assert.equal(res.status, 401, `attempt ${i}`);
    }
    assert.equal(s.stytch.calls.authenticate, 5);

    const right = await verifyCode(s.verify, methodId, code, ip);

    assert.equal(right.status, 429);
    assert.equal(right.body.code, "TOO_MANY_ATTEMPTS");
    assert.equal(right.headers.get("retry-after"), null, "a new code, not time, lifts it");
    assert.equal(s.stytch.calls.authenticate, 5);
    assert.equal(await attemptsOf(methodId), 5);
    assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });
  },
);

dbTest("5 wrong codes from one IP do not stop the right code from another IP", async () => {
  await using s = await setup();
  const email = uniqueEmail("other-ip");
  const { methodId, code } = await sendCode(s, email);
  const attacker = randomIp();
  for (let i = 1; i <= maxAttemptsPerCode; i++) {
    assert.equal((await verifyCode(s.verify, methodId, otherCode(code, i), attacker)).status, 401);
  }
  assert.equal((await verifyCode(s.verify, methodId, code, attacker)).status, 429);

  const owner = await verifyCode(s.verify, methodId, code, randomIp());

  assert.equal(owner.status, 200, JSON.stringify(owner.body));
  assert.equal(owner.body.person.email, email);
  assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 1 });
});

dbTest("the lock holds across function instances", async () => {
  await using s = await setup();
  const { methodId, code } = await sendCode(s, uniqueEmail("instances"));
  const ip = randomIp();
  for (let i = 1; i <= maxAttemptsPerCode; i++) {
    await verifyCode(s.verify, methodId, otherCode(code, i), ip);
  }
  const restarted = createHandler(testDeps({ env: stytchEnv(s.stytch), clock: s.clock }));
  const res = await verifyCode(restarted, methodId, code, ip);
  assert.equal(res.status, 429);
  assert.equal(res.body.code, "TOO_MANY_ATTEMPTS");
});

dbTest("a new code for the method starts a new count of attempts", async () => {
  await using s = await setup();
  const email = uniqueEmail("fresh");
  const first = await sendCode(s, email);
  const ip = randomIp();
  for (let i = 1; i <= maxAttemptsPerCode; i++) {
    await verifyCode(s.verify, first.methodId, otherCode(first.code, i), ip);
  }
  assert.equal((await verifyCode(s.verify, first.methodId, first.code, ip)).status, 429);

  s.clock.advanceSeconds(60);
  const second = await sendCode(s, email);
  assert.equal(second.methodId, first.methodId, "Stytch keeps one method_id per email");
  assert.equal(await attemptsOf(second.methodId), 0);

  const res = await verifyCode(s.verify, second.methodId, second.code, ip);
  assert.equal(res.status, 200);
  assert.equal(res.body.is_new_user, true);
});

dbTest(
  "each verification clears a bounded batch of IP failure rows idle for over an hour",
  async () => {
    await using s = await setup();
    const { methodId, code } = await sendCode(s, uniqueEmail("stale"));
    await verifyCode(s.verify, methodId, otherCode(code));
    s.clock.advanceSeconds(2 * 3600);
    const idle = async () => {
      const [row] = await testSql()`
        select count(*)::int as n from identity.otp_verify_failure
        where updated_at < ${s.clock.now()}::timestamptz - interval '1 hour'`;
      return row.n as number;
    };
    const before = await idle();
    assert.ok(before >= 1);
    await verifyCode(s.verify, `email-test-${crypto.randomUUID()}`, "123456");
    assert.equal(await idle(), Math.max(0, before - policy.sweepBatch));
  },
);

dbTest(
  "each code sent clears a bounded batch of methods whose code is over an hour old",
  async () => {
    await using s = await setup();
    await sendCode(s, uniqueEmail("stale-method"));
    s.clock.advanceSeconds(2 * 3600);
    const stale = async () => {
      const [row] = await testSql()`
      select count(*)::int as n from identity.otp_method
      where code_sent_at < ${s.clock.now()}::timestamptz - interval '1 hour'`;
      return row.n as number;
    };
    const before = await stale();
    assert.ok(before >= 1);
    await sendCode(s, uniqueEmail("fresh-method"));
    assert.equal(await stale(), Math.max(0, before - policy.sweepBatch));
  },
);

dbTest("20 concurrent guesses on one code from one IP reach Stytch 5 times at most", async () => {
  await using s = await setup();
  const email = uniqueEmail("guesses");
  const { methodId, code } = await sendCode(s, email);
  const ip = randomIp();

  const results = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => verifyCode(s.verify, methodId, otherCode(code, i + 1), ip),
    ),
  );

  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [...Array(5).fill(401), ...Array(15).fill(429)]);
  assert.equal(s.stytch.calls.authenticate, 5);
  assert.equal(await attemptsOf(methodId), 5);
});

dbTest("20 concurrent verifications of one code sign in once", async () => {
  await using s = await setup();
  const email = uniqueEmail("double-tap");
  const { methodId, code } = await sendCode(s, email);
  const ip = randomIp();

  const results = await Promise.all(
    Array.from({ length: 20 }, () => verifyCode(s.verify, methodId, code, ip)),
  );

  const ok = results.filter((r) => r.status === 200);
  assert.equal(ok.length, 1);
  assert.equal(ok[0].body.is_new_user, true);
  assert.equal(results.filter((r) => r.status === 401).length, 4); // the code is single-use
  assert.equal(results.filter((r) => r.status === 429).length, 15);
  assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 1 });
});

dbTest(
  "20 concurrent verifications for one new email (different method_ids) make one person",
  async () => {
    // Stytch keeps one method_id per email in a project, so each method_id here comes from its own
    // Stytch project (emulator): 20 different Stytch users proving the same address at once.
    const email = uniqueEmail("race");
    const clock = new TestClock();
    const projects = await Promise.all(
      Array.from({ length: 20 }, () => startStytchEmulator({ now: clock.now })),
    );
    try {
      const attempts = await Promise.all(projects.map(async (stytch) => {
        const { otp } = loggedStytchOtp(
          { projectId: stytch.projectId, secret: stytch.secret, apiUrl: stytch.url },
        );
        const sent = await otp.sendEmailCode(email);
        assert.ok(sent.ok);
        // What otp-send does once Stytch sent the code: the method_id is on record.
        await otpCodeSent(testSql(), sent.methodId, clock.now());
        const handler = createHandler(testDeps({ env: stytchEnv(stytch), clock }));
        return { handler, methodId: sent.methodId, code: stytch.codeFor(sent.methodId)! };
      }));
      assert.equal(new Set(attempts.map((a) => a.methodId)).size, 20);

      const results = await Promise.all(
        attempts.map(({ handler, methodId, code }) => verifyCode(handler, methodId, code)),
      );

      const ok = results.filter((r) => r.status === 200);
      assert.equal(ok.length, 1, JSON.stringify(results.map((r) => r.status)));
      assert.equal(ok[0].body.is_new_user, true);
      // The others are refused, never linked: the person is already bound to another Stytch user.
      assert.ok(results.every((r) => r.status === 200 || r.body.code === "IDENTITY_CONFLICT"));
      assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 1 });
    } finally {
      await Promise.all(projects.map((stytch) => stytch.close()));
    }
  },
);

dbTest(
  "a method_id no otp-send handed out is 401 INVALID_CODE without calling Stytch",
  async () => {
    await using s = await setup();
    const ip = randomIp();

    const res = await verifyCode(s.verify, `email-test-${crypto.randomUUID()}`, "123456", ip);

    assert.equal(res.status, 401);
    assert.equal(res.body.code, "INVALID_CODE");
    assert.equal(res.body.message, "The code is wrong or has expired", "told apart from nothing");
    assert.equal(s.stytch.calls.authenticate, 0);
    assert.equal(await ipFailuresOf(ip), 1, "a failed verify of the IP all the same");
  },
);

dbTest(
  "a method whose last code was sent over an hour ago counts as never handed out",
  async () => {
    await using s = await setup();
    const { methodId, code } = await sendCode(s, uniqueEmail("old-method"));
    s.clock.advanceSeconds(3600);

    const res = await verifyCode(s.verify, methodId, code);

    assert.equal(res.status, 401);
    assert.equal(res.body.code, "INVALID_CODE");
    assert.equal(s.stytch.calls.authenticate, 0);
  },
);

dbTest(
  "300 verifies of made-up method_ids from one IP: 60 are 401, then 429 RATE_LIMITED; none reach Stytch",
  async () => {
    await using s = await setup();
    const ip = randomIp();

    const results = await Promise.all(
      Array.from(
        { length: 300 },
        () => verifyCode(s.verify, `email-test-${crypto.randomUUID()}`, "123456", ip),
      ),
    );

    const codes = results.map((r) => `${r.status} ${r.body.code}`).sort();
    assert.deepEqual(codes, [
      ...Array(60).fill("401 INVALID_CODE"),
      ...Array(240).fill("429 RATE_LIMITED"),
    ]);
    assert.ok(
      results.filter((r) => r.status === 429).every((r) => r.headers.get("retry-after") === "3600"),
    );
    assert.equal(s.stytch.calls.authenticate, 0);
    assert.equal(await ipFailuresOf(ip), 60);
  },
);

dbTest(
  "past 60 failed verifies an hour an IP is 429 even with a right code; other IPs are not",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("ip-hour");
    const ip = randomIp();
    for (let i = 0; i < policy.perIp; i++) {
      if (i % 10 === 0 && i) s.clock.advanceSeconds(60);
      const res = await verifyCode(s.verify, `email-test-${crypto.randomUUID()}`, "123456", ip);
      assert.equal(res.status, 401, `failure ${i + 1}`);
    }
    const { methodId, code } = await sendCode(s, email);

    const right = await verifyCode(s.verify, methodId, code, ip);
    assert.equal(right.status, 429);
    assert.equal(right.body.code, "RATE_LIMITED");
    assert.equal(right.headers.get("retry-after"), String(3600 - 5 * 60));
    assert.equal(s.stytch.calls.authenticate, 0);
    assert.equal(await attemptsOf(methodId), 0, "a refused attempt is not counted on the method");
    assert.equal((await verifyCode(s.verify, methodId, code, randomIp())).status, 200);

    // The window slides: when the first ten failures leave the hour, ten more are allowed.
    s.clock.advanceSeconds(3600 - 5 * 60);
    for (let i = 0; i < 10; i++) {
      const later = await verifyCode(s.verify, `email-test-${crypto.randomUUID()}`, "123456", ip);
      assert.equal(later.status, 401, `failure ${i + 1} of the next hour`);
    }
    const over = await verifyCode(s.verify, `email-test-${crypto.randomUUID()}`, "123456", ip);
    assert.equal(over.status, 429);
    assert.equal(over.headers.get("retry-after"), "60");
  },
);

dbTest(
  "20 wrong codes from all IPs lock the method for every IP until a new code is sent",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("method-lock");
    const first = await sendCode(s, email);
    const attackers = Array.from({ length: 4 }, randomIp);
    let offset = 1;
    for (const ip of attackers) {
      for (let i = 0; i < maxAttemptsPerCode; i++) {
        const res = await verifyCode(s.verify, first.methodId, otherCode(first.code, offset++), ip);
        assert.equal(res.status, 401);
      }
    }
    assert.equal(await attemptsOf(first.methodId), policy.perCode);
    assert.equal(s.stytch.calls.authenticate, policy.perCode);

    const owner = randomIp();
    const locked = await verifyCode(s.verify, first.methodId, first.code, owner);
    assert.equal(locked.status, 429);
    assert.equal(locked.body.code, "TOO_MANY_ATTEMPTS");
    assert.equal(s.stytch.calls.authenticate, policy.perCode);

    // A new code lifts the lock, for the owner's IP and the attackers' alike.
    const second = await sendCode(s, email, owner);
    assert.equal(second.methodId, first.methodId);
    assert.equal(await attemptsOf(second.methodId), 0);
    const retry = await verifyCode(s.verify, second.methodId, otherCode(second.code), attackers[0]);
    assert.equal(retry.status, 401, "the attacker's IP gets a new count too");
    const res = await verifyCode(s.verify, second.methodId, second.code, owner);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  },
);

dbTest("48 concurrent guesses on one code from 8 IPs reach Stytch 20 times at most", async () => {
  await using s = await setup();
  const { methodId, code } = await sendCode(s, uniqueEmail("spread"));
  const ips = Array.from({ length: 8 }, randomIp);

  const results = await Promise.all(
    Array.from(
      { length: 48 },
      (_, i) => verifyCode(s.verify, methodId, otherCode(code, i + 1), ips[i % ips.length]),
    ),
  );

  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [...Array(20).fill(401), ...Array(28).fill(429)]);
  assert.ok(results.every((r) => r.status === 401 || r.body.code === "TOO_MANY_ATTEMPTS"));
  assert.equal(s.stytch.calls.authenticate, 20);
  assert.equal(await attemptsOf(methodId), 20);
});

dbTest("a right code is not a failed verify: the IP's attempt is given back", async () => {
  await using s = await setup();
  const { methodId, code } = await sendCode(s, uniqueEmail("success"));
  const ip = randomIp();
  assert.equal((await verifyCode(s.verify, methodId, otherCode(code), ip)).status, 401);

  assert.equal((await verifyCode(s.verify, methodId, code, ip)).status, 200);

  assert.equal(await ipFailuresOf(ip), 1);
  assert.equal(await attemptsOf(methodId), 2, "the used code keeps its count until a new one");
});

dbTest("verification stores the client IP only as a SHA-256 hash", async () => {
  await using s = await setup();
  const { methodId, code } = await sendCode(s, uniqueEmail("ip-hash"));
  const ip = randomIp();
  assert.equal((await verifyCode(s.verify, methodId, otherCode(code), ip)).status, 401);

  const [method] = await testSql()`
    select failed_ip_keys from identity.otp_method where method_id = ${methodId}`;
  assert.deepEqual(method.failed_ip_keys, [sha256(ip)]);
  const [{ plain }] = await testSql()`
    select
      (select count(*)::int from identity.otp_verify_failure
        where position(convert_to(${ip}, 'UTF8') in ip_key) > 0) +
      (select count(*)::int from identity.otp_method, unnest(failed_ip_keys) k
        where position(convert_to(${ip}, 'UTF8') in k) > 0) as plain`;
  assert.equal(plain, 0);
});

/** A Stytch that sends codes and accepts any, answering `email` for the person (§13.8 tests). */
function stytchAnswering(email: string): StytchOtp {
  const methodId = `email-test-${crypto.randomUUID()}`;
  return {
    sendEmailCode: () => Promise.resolve({ ok: true, methodId }),
    authenticateCode: () =>
      Promise.resolve({
        ok: true,
        userId: `user-test-${crypto.randomUUID()}`,
        email,
        emailVerified: true,
      }),
  };
}

for (
  const [name, email] of [
    ["over 254 characters", `${"a".repeat(250)}@example.test`],
    ["without an @", "not-an-email"],
    ["with a control character", "ada\u0000@example.test"],
    ["empty", ""],
    ["with spaces inside", "ada lovelace@example.test"],
  ]
) {
  dbTest(`an email from Stytch ${name} counts as no email, never a 500`, async () => {
    const deps = testDeps({ env: { STYTCH_PROJECT_ID: "project-test-1", STYTCH_SECRET: "s" } });
    deps.stytch = () => stytchAnswering(email);
    const sendHandler = createSendHandler(deps);
    const sent = await call(sendHandler, "otp-send", {
      body: { email: uniqueEmail("profile") },
      headers: { "x-forwarded-for": randomIp() },
    });
    assert.equal(sent.status, 200);

    const res = await verifyCode(createHandler(deps), sent.body.method_id, "123456");

    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.person.email, null);
    assert.equal(res.body.is_new_user, true);
    const { payload } = await jwtVerify(res.body.access_token, secretKey, {
      currentDate: deps.clock.now(),
    });
    assert.equal(payload.email, "");
  });
}

dbTest("an email from Stytch with spaces around it is kept, trimmed", async () => {
  const email = uniqueEmail("padded");
  const deps = testDeps({ env: { STYTCH_PROJECT_ID: "project-test-1", STYTCH_SECRET: "s" } });
  deps.stytch = () => stytchAnswering(` ${email} `);
  const sent = await call(createSendHandler(deps), "otp-send", {
    body: { email },
    headers: { "x-forwarded-for": randomIp() },
  });

  const res = await verifyCode(createHandler(deps), sent.body.method_id, "123456");

  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.person.email, email);
});

dbTest("a person linked to another Stytch user is 409 IDENTITY_CONFLICT, no session", async () => {
  await using s = await setup();
  const email = uniqueEmail("conflict");
  const existing = await signInForTest(testDeps({ clock: s.clock }), {
    email,
    provider: "stytch",
    providerUserId: `user-test-${crypto.randomUUID()}`,
  });
  const { methodId, code } = await sendCode(s, email);

  const res = await verifyCode(s.verify, methodId, code);

  assert.equal(res.status, 409);
  assert.equal(res.body.code, "IDENTITY_CONFLICT");
  assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 1 });
  const [person] = await testSql()`
    select stytch_user_id from identity.person where id = ${existing.person.id}`;
  assert.doesNotMatch(person.stytch_user_id, new RegExp(s.stytch.projectId));
});

dbTest("in invite mode a new email without an invitation is 403 SIGNUP_DISABLED", async () => {
  await using s = await setup({ env: { SIGNUP_MODE: "invite" } });
  const email = uniqueEmail("uninvited");
  const { methodId, code } = await sendCode(s, email);

  const res = await verifyCode(s.verify, methodId, code);

  assert.equal(res.status, 403);
  assert.equal(res.body.code, "SIGNUP_DISABLED");
  assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });
});

dbTest("in invite mode an invited email signs up", async () => {
  await using s = await setup({ env: { SIGNUP_MODE: "invite" } });
  const email = uniqueEmail("invited");
  await testSql()`
    insert into identity.invitation (email, expires_at)
    values (${email}, ${s.clock.now()}::timestamptz + interval '1 day')`;
  const { methodId, code } = await sendCode(s, email);

  const res = await verifyCode(s.verify, methodId, code);

  assert.equal(res.status, 200);
  assert.equal(res.body.is_new_user, true);
  assert.deepEqual(await personsAndSessions(email), { persons: 1, sessions: 1 });
});

dbTest(
  "otp-verify refuses bad input with 400, 413 or 415, before Stytch and without writing",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("bad-input");
    const { methodId, code } = await sendCode(s, email);
    const jsonType = { "content-type": "application/json" };
    const cases: [string, CallOptions, number, string, RegExp][] = [
      [
        "5-digit code",
        { body: { method_id: methodId, code: "12345" } },
        400,
        "",
        /^code .*6 digits/,
      ],
      ["7-digit code", { body: { method_id: methodId, code: "1234567" } }, 400, "", /^code /],
      ["code with a letter", { body: { method_id: methodId, code: "12a456" } }, 400, "", /^code /],
      ["code with spaces", { body: { method_id: methodId, code: " 123456" } }, 400, "", /^code /],
      ["code as a number", { body: { method_id: methodId, code: 123456 } }, 400, "", /^code /],
      ["missing code", { body: { method_id: methodId } }, 400, "", /^code is required$/],
      ["missing method_id", { body: { code } }, 400, "", /^method_id is required$/],
      ["empty method_id", { body: { method_id: "", code } }, 400, "", /^method_id /],
      ["odd method_id", { body: { method_id: "../admin", code } }, 400, "", /^method_id /],
      ["malformed JSON", { body: '{"code": "1', headers: jsonType }, 400, "", /not valid JSON/],
      [
        "70 KiB body",
        { body: { method_id: methodId, code, padding: "x".repeat(70 * 1024) } },
        413,
        "PAYLOAD_TOO_LARGE",
        /bytes/,
      ],
      [
        "text body",
        {
          body: JSON.stringify({ method_id: methodId, code }),
          headers: { "content-type": "text/plain" },
        },
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        /application\/json/,
      ],
    ];
    for (const [name, options, status, code, message] of cases) {
      const res = await verifyRequest(s.verify, options);
      assert.equal(res.status, status, name);
      assert.equal(res.body.code, code || "VALIDATION_FAILED", name);
      assert.match(res.body.message, message, name);
    }
    assert.equal(s.stytch.calls.authenticate, 0);
    assert.equal(await attemptsOf(methodId), 0);
    assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });

    // The same code with unknown extra fields is fine: they are ignored.
    const extra = await verifyRequest(s.verify, {
      body: { method_id: methodId, code, device: "ios", remember: true },
    });
    assert.equal(extra.status, 200);
  },
);

dbTest(
  "otp-verify is 503 STYTCH_NOT_CONFIGURED naming the variable when Stytch is off",
  async () => {
    const res = await verifyCode(
      createHandler(testDeps({ env: { STYTCH_PROJECT_ID: "project-test-1" } })),
      "email-test-1",
      "123456",
    );
    assert.equal(res.status, 503);
    assert.equal(res.body.code, "STYTCH_NOT_CONFIGURED");
    assert.match(res.body.message, /STYTCH_SECRET is missing/);
  },
);

for (
  const [kind, status, code] of [
    ["server_error", 502, "PROVIDER_ERROR"],
    ["garbage", 502, "PROVIDER_ERROR"],
    ["unexpected_json", 502, "PROVIDER_ERROR"],
    ["rate_limited", 429, "RATE_LIMITED"],
  ] as const
) {
  dbTest(
    `otp-verify answers Stytch's ${kind} with ${status} ${code}, gives the attempt back`,
    async () => {
      await using s = await setup({ emulator: { failWith: { kind } } });
      const methodId = `email-test-${crypto.randomUUID()}`;
      await otpCodeSent(testSql(), methodId, s.clock.now()); // as otp-send records it
      const ip = randomIp();

      const res = await verifyCode(s.verify, methodId, "123456", ip);

      assert.equal(res.status, status);
      assert.equal(res.body.code, code);
      if (status === 429) assert.equal(res.headers.get("retry-after"), "60");
      assert.equal(s.stytch.calls.authenticate, 1);
      assert.equal(await attemptsOf(methodId), 0);
      assert.equal(await ipFailuresOf(ip), 0);
      assert.equal(s.logs.length, 1);
      assert.doesNotMatch(JSON.stringify(s.logs), /123456/);
    },
  );
}

dbTest("otp-verify is 502 within the timeout when Stytch does not answer", async () => {
  const timeoutMs = 300;
  await using s = await setup({
    emulator: { failWith: { kind: "hang" } },
    stytch: { timeoutMs },
  });
  const methodId = `email-test-${crypto.randomUUID()}`;
  await otpCodeSent(testSql(), methodId, s.clock.now()); // as otp-send records it
  const startedAt = performance.now();
  const res = await verifyCode(s.verify, methodId, "123456");
  const elapsedMs = performance.now() - startedAt;
  assert.equal(res.status, 502);
  assert.equal(res.body.code, "PROVIDER_ERROR");
  assert.ok(elapsedMs >= timeoutMs && elapsedMs < timeoutMs + 1500, `took ${elapsedMs} ms`);
  assert.equal(s.logs[0]?.detail, "timeout");
  assert.equal(await attemptsOf(methodId), 0);
});

dbTest(
  "otp-verify is 502 when Stytch is down, with the right code, and writes nothing",
  async () => {
    await using s = await setup();
    const email = uniqueEmail("down");
    const { methodId, code } = await sendCode(s, email);
    await s.stytch.close();

    const res = await verifyCode(s.verify, methodId, code);

    assert.equal(res.status, 502);
    assert.equal(res.body.code, "PROVIDER_ERROR");
    assert.equal(await attemptsOf(methodId), 0);
    assert.deepEqual(await personsAndSessions(email), { persons: 0, sessions: 0 });
  },
);
