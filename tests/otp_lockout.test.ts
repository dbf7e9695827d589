/**
 * SPEC §13.2 from the attacker's side, over HTTP: the local server (every function), the local
 * Stytch emulator behind the real SDK, and the test database. An outside review locked people out
 * of OTP sign-in knowing only their email and the public key; each of its moves is replayed here,
 * and the goal is checked: an attacker from up to two IPs cannot stop the owner, from a third,
 * receiving a code and signing in with it.
 */
import { type OtpStack as Stack, startOtpStack as startStack } from "./support/stytch.ts";
import assert from "node:assert/strict";
import { dbTest, uniqueEmail } from "./support/db.ts";
import { randomIp } from "./support/http.ts";

/**
 * POSTs to a function from `ip`. The client writes a first hop of its own choosing; the platform's
 * proxy appends the address it saw, which is the one the limits key on.
 */
async function post(
  stack: Stack,
  name: "otp-send" | "otp-verify",
  body: unknown,
  ip: string,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${stack.server.functionsUrl}/${name}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${stack.anonKey}`,
      "content-type": "application/json",
      "x-forwarded-for": `${randomIp()}, ${ip}`,
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** A six-digit code that differs from `code`. */
function otherCode(code: string, offset: number): string {
  return String((Number(code) + offset) % 1_000_000).padStart(6, "0");
}

dbTest(
  "an attacker from two IPs spending every limit cannot stop the owner, from a third, signing in",
  async () => {
    await using stack = await startStack();
    const email = uniqueEmail("victim");
    const [local, domain] = email.split("@");
    const attackers = [randomIp(), randomIp()];
    const owner = randomIp();
    let methodId = "";
    let guess = 0;
    let counted = 0; // guesses that reached Stytch

    // Every minute for six minutes, each attacker IP asks for a code (learning the method_id,
    // which Stytch keeps for the email for good) and tries an alias of the inbox for a fresh
    // budget; then each guesses until it is refused.
    for (let minute = 0; minute < 6; minute++) {
      for (const ip of attackers) {
        const sent = await post(stack, "otp-send", { email }, ip);
        if (minute < 5) {
          assert.equal(sent.status, 200, `minute ${minute}: ${JSON.stringify(sent.body)}`);
          methodId = sent.body.method_id;
        } else {
          assert.equal(sent.status, 429, "5 an hour per (email, IP)");
          assert.equal(sent.body.code, "RATE_LIMITED");
        }
        const alias = await post(stack, "otp-send", { email: `${local}+${minute}@${domain}` }, ip);
        assert.equal(alias.status, 429, "an alias shares the inbox's budget");
      }
      const code = stack.stytch.codeFor(methodId)!;
      for (const ip of attackers) {
        while (true) {
          const res = await post(
            stack,
            "otp-verify",
            { method_id: methodId, code: otherCode(code, ++guess) },
            ip,
          );
          if (res.status === 429) {
            assert.equal(res.body.code, "TOO_MANY_ATTEMPTS");
            break;
          }
          assert.equal(res.status, 401);
          counted++;
        }
      }
      stack.clock.advanceSeconds(60);
    }
    assert.equal(counted, 2 * 5 * 5, "5 guesses per code sent, per attacker IP");

    // Then each attacker IP spends what is left of its failed verifies on made-up method_ids.
    for (const ip of attackers) {
      while (true) {
        const res = await post(
          stack,
          "otp-verify",
          { method_id: `email-test-${crypto.randomUUID()}`, code: "123456" },
          ip,
        );
        if (res.status === 429) {
          assert.equal(res.body.code, "RATE_LIMITED");
          assert.ok(Number(res.headers.get("retry-after")) > 0);
          break;
        }
        assert.equal(res.body.code, "INVALID_CODE");
      }
    }
    assert.equal(stack.stytch.calls.authenticate, counted, "made-up method_ids never reach Stytch");

    // The owner asks for a code from a third IP, and the attackers go on trying meanwhile.
    const sent = await post(stack, "otp-send", { email }, owner);
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    assert.equal(sent.body.method_id, methodId);
    const code = stack.stytch.codeFor(methodId)!;
    for (const ip of attackers) {
      assert.equal((await post(stack, "otp-send", { email }, ip)).status, 429);
      const res = await post(stack, "otp-verify", { method_id: methodId, code: "000000" }, ip);
      assert.equal(res.status, 429);
    }

    const verified = await post(stack, "otp-verify", { method_id: methodId, code }, owner);

    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal(verified.body.person.email, email);
    assert.ok(verified.body.access_token);
    assert.deepEqual(stack.stytch.calls, { loginOrCreate: 2 * 5 + 1, authenticate: counted + 1 });
  },
);

dbTest(
  "guesses fired from two IPs while the owner verifies do not turn the owner's right code into a 429",
  async () => {
    await using stack = await startStack();
    const email = uniqueEmail("race");
    const [a, b] = [randomIp(), randomIp()];
    const owner = randomIp();
    const sent = await post(stack, "otp-send", { email }, owner);
    assert.equal(sent.status, 200);
    const methodId = sent.body.method_id;
    const code = stack.stytch.codeFor(methodId)!;

    const guesses = Array.from(
      { length: 60 },
      (_, i) =>
        post(
          stack,
          "otp-verify",
          { method_id: methodId, code: otherCode(code, i + 1) },
          [a, b][i % 2],
        ),
    );
    const [verified, ...refused] = await Promise.all([
      post(stack, "otp-verify", { method_id: methodId, code }, owner),
      ...guesses,
    ]);

    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal(verified.body.person.email, email);
    const statuses = refused.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(10).fill(401), ...Array(50).fill(429)]);
    assert.equal(stack.stytch.calls.authenticate, 11);
  },
);

dbTest(
  "sends spread over five IPs no longer spend the email's hour: the owner still gets a code",
  async () => {
    await using stack = await startStack();
    const email = uniqueEmail("spread");
    for (let i = 0; i < 5; i++) {
      assert.equal((await post(stack, "otp-send", { email }, randomIp())).status, 200);
    }

    const sent = await post(stack, "otp-send", { email }, randomIp());

    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const code = stack.stytch.codeFor(sent.body.method_id);
    const verified = await post(
      stack,
      "otp-verify",
      { method_id: sent.body.method_id, code },
      randomIp(),
    );
    assert.equal(verified.status, 200);
  },
);

dbTest(
  "an inbox is not flooded through +tag aliases: one IP reaches it 5 times an hour",
  async () => {
    await using stack = await startStack();
    const [local, domain] = uniqueEmail("flood").split("@");
    const ip = randomIp();
    const statuses: number[] = [];
    for (let minute = 0; minute < 20; minute++) {
      statuses.push(
        (await post(stack, "otp-send", { email: `${local}+${minute}@${domain}` }, ip))
          .status,
      );
      stack.clock.advanceSeconds(61);
    }
    assert.deepEqual(statuses, [...Array(5).fill(200), ...Array(15).fill(429)]);
    assert.equal(stack.stytch.calls.loginOrCreate, 5);
  },
);
