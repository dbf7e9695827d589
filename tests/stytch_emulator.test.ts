/**
 * The Stytch wrapper (`_shared/stytch.ts`, through the real `stytch` SDK) against the local Stytch
 * emulator: the happy path, every way a code can be refused, and every way Stytch can fail.
 */
import assert from "node:assert/strict";
import {
  startStytchEmulator,
  type StytchEmulator,
  type StytchEmulatorOptions,
} from "../local/emulators/stytch.ts";
import {
  createStytchOtp,
  stytchBaseUrl,
  type StytchOtpOptions,
} from "../supabase/functions/_shared/stytch.ts";
import { type LoggedStytchOtp, loggedStytchOtp } from "./support/stytch.ts";

type StytchOtp = LoggedStytchOtp;
type StytchLogEntry = Record<string, unknown>;

const EMAIL = "ada@example.com";

/** Starts an emulator and a wrapper pointed at it, runs `fn`, and always closes the emulator. */
async function withStytch(
  fn: (stytch: StytchEmulator, otp: StytchOtp, logs: StytchLogEntry[]) => Promise<void>,
  emulatorOptions: StytchEmulatorOptions = {},
  otpOptions: StytchOtpOptions = {},
): Promise<void> {
  const emulator = await startStytchEmulator(emulatorOptions);
  try {
    const { otp, logs } = loggedStytchOtp(
      { projectId: emulator.projectId, secret: emulator.secret, apiUrl: emulator.url },
      otpOptions,
    );
    await fn(emulator, otp, logs);
  } finally {
    await emulator.close();
  }
}

async function sendCode(stytch: StytchEmulator, otp: StytchOtp, email = EMAIL) {
  const sent = await otp.sendEmailCode(email);
  assert.ok(sent.ok, `sendEmailCode failed: ${JSON.stringify(sent)}`);
  const code = stytch.codeFor(sent.methodId);
  assert.ok(code);
  return { methodId: sent.methodId, code };
}

/** A six-digit code that differs from `code`. */
function otherCode(code: string): string {
  return String((Number(code) + 1) % 1_000_000).padStart(6, "0");
}

Deno.test("authenticateCode accepts the emailed code and returns the Stytch user and verified email", async () => {
  await withStytch(async (stytch, otp) => {
    const { methodId, code } = await sendCode(stytch, otp);
    assert.match(methodId, /^email-test-[0-9a-f-]{36}$/);
    assert.match(code, /^\d{6}$/);
    assert.equal(stytch.lastCodeFor(EMAIL), code);

    const result = await otp.authenticateCode(methodId, code);

    assert.ok(result.ok);
    assert.match(result.userId, /^user-test-[0-9a-f-]{36}$/);
    assert.equal(result.email, EMAIL);
    assert.equal(result.emailVerified, true);
    assert.deepEqual(stytch.calls, { loginOrCreate: 1, authenticate: 1 });
  });
});

Deno.test("a later send for the same email keeps the same Stytch user and method id", async () => {
  await withStytch(async (stytch, otp) => {
    const first = await sendCode(stytch, otp);
    const firstAuth = await otp.authenticateCode(first.methodId, first.code);
    const second = await sendCode(stytch, otp, "  ADA@Example.com ");
    const secondAuth = await otp.authenticateCode(second.methodId, second.code);

    assert.equal(second.methodId, first.methodId);
    assert.ok(firstAuth.ok && secondAuth.ok);
    assert.equal(secondAuth.userId, firstAuth.userId);
  });
});

Deno.test("authenticateCode refuses a wrong code as invalid_code", async () => {
  await withStytch(async (stytch, otp, logs) => {
    const { methodId, code } = await sendCode(stytch, otp);
    assert.deepEqual(await otp.authenticateCode(methodId, otherCode(code)), {
      ok: false,
      reason: "invalid_code",
    });
    assert.deepEqual(logs, [], "a wrong code is the user's mistake, not a provider failure");
  });
});

Deno.test("authenticateCode refuses an unknown method id as invalid_code", async () => {
  await withStytch(async (_stytch, otp) => {
    const result = await otp.authenticateCode(`email-test-${crypto.randomUUID()}`, "123456");
    assert.deepEqual(result, { ok: false, reason: "invalid_code" });
  });
});

Deno.test("authenticateCode refuses an expired code as invalid_code", async () => {
  let now = new Date("2030-01-01T00:00:00Z");
  await withStytch(async (stytch, otp) => {
    const { methodId, code } = await sendCode(stytch, otp);
    now = new Date(now.getTime() + 2 * 60_000); // Stytch's default lifetime is 2 minutes
    assert.deepEqual(await otp.authenticateCode(methodId, code), {
      ok: false,
      reason: "invalid_code",
    });
  }, { now: () => now });
});

Deno.test("authenticateCode accepts a code just before it expires", async () => {
  let now = new Date("2030-01-01T00:00:00Z");
  await withStytch(async (stytch, otp) => {
    const { methodId, code } = await sendCode(stytch, otp);
    now = new Date(now.getTime() + 2 * 60_000 - 1);
    assert.equal((await otp.authenticateCode(methodId, code)).ok, true);
  }, { now: () => now });
});

Deno.test("authenticateCode refuses a code that was already used as invalid_code", async () => {
  await withStytch(async (stytch, otp) => {
    const { methodId, code } = await sendCode(stytch, otp);
    assert.equal((await otp.authenticateCode(methodId, code)).ok, true);
    assert.deepEqual(await otp.authenticateCode(methodId, code), {
      ok: false,
      reason: "invalid_code",
    });
  });
});

Deno.test("a second send invalidates the first code", async () => {
  await withStytch(async (stytch, otp) => {
    const first = await sendCode(stytch, otp);
    let second = await sendCode(stytch, otp);
    while (second.code === first.code) second = await sendCode(stytch, otp); // 1 in a million

    assert.deepEqual(await otp.authenticateCode(first.methodId, first.code), {
      ok: false,
      reason: "invalid_code",
    });
    assert.equal((await otp.authenticateCode(second.methodId, second.code)).ok, true);
  });
});

Deno.test("a wrong project secret is a provider_error, never invalid_code", async () => {
  const emulator = await startStytchEmulator();
  try {
    const { otp, logs } = loggedStytchOtp(
      { projectId: emulator.projectId, secret: "secret-test-wrong", apiUrl: emulator.url },
    );
    assert.deepEqual(await otp.sendEmailCode(EMAIL), { ok: false, reason: "provider_error" });
    assert.deepEqual(await otp.authenticateCode("email-test-x", "123456"), {
      ok: false,
      reason: "provider_error",
    });
    assert.equal(logs.length, 2);
    assert.equal(logs[0].error_type, "unauthorized_credentials");
    assert.equal(logs[0].status_code, 401);
    assert.doesNotMatch(JSON.stringify(logs), /secret-test-wrong|ada@example\.com/);
  } finally {
    await emulator.close();
  }
});

Deno.test("a Stytch 500 is a provider_error", async () => {
  await withStytch(async (_stytch, otp, logs) => {
    assert.deepEqual(await otp.sendEmailCode(EMAIL), { ok: false, reason: "provider_error" });
    assert.deepEqual(await otp.authenticateCode("email-test-x", "123456"), {
      ok: false,
      reason: "provider_error",
    });
    assert.equal(logs[0].error_type, "internal_server_error");
  }, { failWith: { kind: "server_error" } });
});

Deno.test("an answer that is not JSON is a provider_error", async () => {
  await withStytch(async (_stytch, otp, logs) => {
    assert.deepEqual(await otp.sendEmailCode(EMAIL), { ok: false, reason: "provider_error" });
    assert.deepEqual(await otp.authenticateCode("email-test-x", "123456"), {
      ok: false,
      reason: "provider_error",
    });
    assert.equal(logs[0].detail, "unparseable_answer");
  }, { failWith: { kind: "garbage" } });
});

Deno.test("a JSON answer without the expected fields is a provider_error", async () => {
  await withStytch(async (_stytch, otp, logs) => {
    assert.deepEqual(await otp.sendEmailCode(EMAIL), { ok: false, reason: "provider_error" });
    assert.deepEqual(await otp.authenticateCode("email-test-x", "123456"), {
      ok: false,
      reason: "provider_error",
    });
    assert.equal(logs[0].detail, "unexpected_answer");
  }, { failWith: { kind: "unexpected_json" } });
});

Deno.test("a Stytch 429 is rate_limited", async () => {
  await withStytch(async (_stytch, otp, logs) => {
    assert.deepEqual(await otp.sendEmailCode(EMAIL), { ok: false, reason: "rate_limited" });
    assert.deepEqual(await otp.authenticateCode("email-test-x", "123456"), {
      ok: false,
      reason: "rate_limited",
    });
    assert.equal(logs[0].error_type, "too_many_requests");
  }, { failWith: { kind: "rate_limited" } });
});

Deno.test("the wrapper recovers once Stytch answers again", async () => {
  await withStytch(async (stytch, otp) => {
    assert.deepEqual(await otp.sendEmailCode(EMAIL), { ok: false, reason: "provider_error" });
    const { methodId, code } = await sendCode(stytch, otp);
    assert.equal((await otp.authenticateCode(methodId, code)).ok, true);
    assert.equal(stytch.calls.loginOrCreate, 2);
  }, { failWith: { kind: "server_error", times: 1 } });
});

Deno.test("an unreachable Stytch is a provider_error", async () => {
  const emulator = await startStytchEmulator();
  await emulator.close();
  const { otp, logs } = loggedStytchOtp(
    { projectId: emulator.projectId, secret: emulator.secret, apiUrl: emulator.url },
  );
  assert.deepEqual(await otp.sendEmailCode(EMAIL), { ok: false, reason: "provider_error" });
  assert.deepEqual(await otp.authenticateCode("email-test-x", "123456"), {
    ok: false,
    reason: "provider_error",
  });
  assert.equal(logs[0].detail, "network");
});

Deno.test("a Stytch that never answers is a provider_error once the deadline passes", async () => {
  const timeoutMs = 150;
  await withStytch(
    async (_stytch, otp, logs) => {
      const startedAt = performance.now();
      assert.deepEqual(await otp.sendEmailCode(EMAIL), { ok: false, reason: "provider_error" });
      assert.deepEqual(await otp.authenticateCode("email-test-x", "123456"), {
        ok: false,
        reason: "provider_error",
      });
      const elapsedMs = performance.now() - startedAt;
      assert.ok(
        elapsedMs >= 2 * timeoutMs && elapsedMs < 2 * timeoutMs + 700,
        `took ${elapsedMs} ms`,
      );
      assert.equal(logs[0].detail, "timeout");
    },
    { failWith: { kind: "hang" } },
    { timeoutMs },
  );
});

Deno.test("failure logs carry no code, email or secret", async () => {
  const logs: StytchLogEntry[] = [];
  const secrets: string[] = [];
  const kinds = ["server_error", "rate_limited", "garbage", "unexpected_json", "hang"] as const;
  for (const kind of kinds) {
    const emulator = await startStytchEmulator({ failWith: { kind } });
    secrets.push(emulator.secret);
    try {
      const { otp, logs: lines } = loggedStytchOtp(
        { projectId: emulator.projectId, secret: emulator.secret, apiUrl: emulator.url },
        { timeoutMs: 100 },
      );
      await otp.sendEmailCode(EMAIL);
      await otp.authenticateCode("email-test-x", "654321");
      logs.push(...lines);
    } finally {
      await emulator.close();
    }
  }
  assert.equal(logs.length, 2 * kinds.length);
  const logged = JSON.stringify(logs);
  for (const forbidden of [EMAIL, "example.com", "654321", ...secrets]) {
    assert.ok(!logged.includes(forbidden), `a log line contains ${forbidden}`);
  }
});

Deno.test("createStytchOtp refuses a deadline above 10 s", () => {
  assert.throws(
    () => createStytchOtp({ projectId: "project-test-x", secret: "s" }, { timeoutMs: 10_001 }),
    RangeError,
  );
});

Deno.test("stytchBaseUrl picks Stytch's API by project id unless an API URL is set", () => {
  assert.equal(
    stytchBaseUrl({ projectId: "project-live-1", secret: "s" }),
    "https://api.stytch.com/",
  );
  assert.equal(
    stytchBaseUrl({ projectId: "project-test-1", secret: "s" }),
    "https://test.stytch.com/",
  );
  assert.equal(
    stytchBaseUrl({ projectId: "project-live-1", secret: "s", apiUrl: "http://127.0.0.1:9/v1/" }),
    "http://127.0.0.1:9/",
  );
});

// The wire itself, without the SDK: what the emulator answers is what Stytch answers.

async function post(stytch: StytchEmulator, path: string, body: unknown, auth?: string) {
  const response = await fetch(`${stytch.url}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: auth ?? `Basic ${btoa(`${stytch.projectId}:${stytch.secret}`)}`,
    },
    body: JSON.stringify(body),
  });
  assert.equal(response.headers.get("content-type"), "application/json");
  return { status: response.status, body: await response.json() };
}

function assertStytchError(body: Record<string, unknown>, status: number, errorType: string) {
  assert.deepEqual(Object.keys(body).sort(), [
    "error_message",
    "error_type",
    "error_url",
    "request_id",
    "status_code",
  ]);
  assert.equal(body.status_code, status);
  assert.equal(body.error_type, errorType);
  assert.match(String(body.request_id), /^request-id-test-/);
}

Deno.test("the emulator refuses missing or wrong basic auth with Stytch's 401 error", async () => {
  await withStytch(async (stytch) => {
    for (const auth of ["", "Bearer x", `Basic ${btoa(`${stytch.projectId}:nope`)}`, "Basic %%"]) {
      const answer = await post(stytch, "/v1/otps/email/login_or_create", { email: EMAIL }, auth);
      assert.equal(answer.status, 401);
      assertStytchError(answer.body, 401, "unauthorized_credentials");
    }
    assert.equal(stytch.lastCodeFor(EMAIL), undefined);
  });
});

Deno.test("the emulator answers login_or_create with user_created only the first time", async () => {
  const issued: string[] = [];
  await withStytch(async (stytch) => {
    const first = await post(stytch, "/v1/otps/email/login_or_create", { email: EMAIL });
    const second = await post(stytch, "/v1/otps/email/login_or_create", {
      email: EMAIL,
      expiration_minutes: 5,
    });
    assert.equal(first.status, 200);
    assert.equal(first.body.status_code, 200);
    assert.equal(first.body.user_created, true);
    assert.equal(second.body.user_created, false);
    assert.equal(second.body.user_id, first.body.user_id);
    assert.equal(second.body.email_id, first.body.email_id);
    assert.equal(issued.length, 2);
    assert.equal(stytch.codeFor(first.body.email_id), issued[1]);
  }, { onCode: (_email, code) => issued.push(code) });
});

Deno.test("the emulator answers a wrong code 404 and a used code 401, as Stytch does", async () => {
  await withStytch(async (stytch) => {
    const sent = await post(stytch, "/v1/otps/email/login_or_create", { email: EMAIL });
    const methodId = sent.body.email_id;
    const code = stytch.codeFor(methodId)!;

    const wrong = await post(stytch, "/v1/otps/authenticate", {
      method_id: methodId,
      code: otherCode(code),
    });
    assertStytchError(wrong.body, 404, "otp_code_not_found");

    const ok = await post(stytch, "/v1/otps/authenticate", { method_id: methodId, code });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.method_id, methodId);
    assert.equal(ok.body.session_token, "");
    assert.equal(ok.body.session, null);
    assert.deepEqual(ok.body.user.emails, [{ email_id: methodId, email: EMAIL, verified: true }]);

    const reused = await post(stytch, "/v1/otps/authenticate", { method_id: methodId, code });
    assertStytchError(reused.body, 401, "unable_to_auth_otp_code");
  });
});

Deno.test("the emulator refuses expiration_minutes outside 1 to 10 and malformed emails", async () => {
  await withStytch(async (stytch) => {
    const tooLong = await post(stytch, "/v1/otps/email/login_or_create", {
      email: EMAIL,
      expiration_minutes: 11,
    });
    assertStytchError(tooLong.body, 400, "bad_request");
    const malformed = await post(stytch, "/v1/otps/email/login_or_create", { email: "ada" });
    assertStytchError(malformed.body, 400, "invalid_email");
  });
});
