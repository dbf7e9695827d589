/**
 * The local Resend emulator on the wire, with plain `fetch` exactly as a client would call Resend:
 * sending, idempotency keys, validation, authentication, every fault it can play, and the mailbox.
 */
import assert from "node:assert/strict";
import {
  type ResendEmulator,
  type ResendEmulatorOptions,
  startResendEmulator,
} from "../local/emulators/resend.ts";

const EMAIL = {
  from: "Acme <hello@acme.test>",
  to: "ada@example.com",
  subject: "Welcome to Acme",
  html: "<p>Hello Ada</p>",
  text: "Hello Ada",
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Starts an emulator, runs `fn`, and always closes it. */
async function withResend(
  fn: (resend: ResendEmulator) => Promise<void>,
  options: ResendEmulatorOptions = {},
): Promise<void> {
  const resend = await startResendEmulator(options);
  try {
    await fn(resend);
  } finally {
    await resend.close();
  }
}

interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any -- JSON answers are asserted field by field
  body: any;
}

/** Reads an answer, checking the content type Resend always sends. */
async function read(response: Response): Promise<Answer> {
  assert.equal(response.headers.get("content-type"), "application/json");
  return { status: response.status, headers: response.headers, body: await response.json() };
}

function send(
  resend: ResendEmulator,
  body: unknown,
  { key, auth, signal }: { key?: string; auth?: string | null; signal?: AbortSignal } = {},
): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (auth !== null) headers.authorization = auth ?? `Bearer ${resend.apiKey}`;
  if (key !== undefined) headers["idempotency-key"] = key;
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  return fetch(`${resend.url}/emails`, { method: "POST", headers, body: payload, signal });
}

async function get(resend: ResendEmulator, path: string, auth?: string | null): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (auth !== null) headers.authorization = auth ?? `Bearer ${resend.apiKey}`;
  return await read(await fetch(`${resend.url}${path}`, { headers }));
}

function assertResendError(answer: Answer, status: number, name: string) {
  assert.equal(answer.status, status);
  assert.deepEqual(Object.keys(answer.body).sort(), ["message", "name", "statusCode"]);
  assert.equal(answer.body.statusCode, status);
  assert.equal(answer.body.name, name);
  assert.equal(typeof answer.body.message, "string");
}

Deno.test("the emulator accepts an email, answers its id and keeps it in the mailbox", async () => {
  const sent: string[] = [];
  await withResend(async (resend) => {
    assert.match(resend.apiKey, /^re_test_[0-9a-f]{32}$/);
    assert.match(resend.url, /^http:\/\/127\.0\.0\.1:\d+$/);

    const answer = await read(await send(resend, EMAIL));

    assert.equal(answer.status, 200);
    assert.deepEqual(Object.keys(answer.body), ["id"]);
    assert.match(answer.body.id, UUID);
    assert.deepEqual(resend.mailbox(), [{
      id: answer.body.id,
      from: EMAIL.from,
      to: [EMAIL.to],
      subject: EMAIL.subject,
      html: EMAIL.html,
      text: EMAIL.text,
      idempotencyKey: null,
      createdAt: "2030-01-01T00:00:00.000Z",
    }]);
    assert.equal(resend.requests(), 1);
    assert.deepEqual(sent, [answer.body.id]);
  }, { now: () => new Date("2030-01-01T00:00:00Z"), onEmail: (email) => sent.push(email.id) });
});

Deno.test("the emulator keeps reply_to, headers and tags, and accepts named addresses", async () => {
  await withResend(async (resend) => {
    const to = Array.from({ length: 50 }, (_, i) => `user${i}@example.com`);
    to[0] = '"Lovelace, Ada" <ada@example.com>';
    const answer = await read(
      await send(resend, {
        ...EMAIL,
        to,
        html: undefined,
        reply_to: "support@acme.test",
        headers: { "X-Entity-Ref-ID": "outbox-1" },
        tags: [{ name: "template", value: "welcome" }],
      }),
    );
    assert.equal(answer.status, 200);
    const [email] = resend.mailbox();
    assert.deepEqual(email.to, to);
    assert.equal(email.html, undefined);
    assert.deepEqual(email.replyTo, ["support@acme.test"]);
    assert.deepEqual(email.headers, { "X-Entity-Ref-ID": "outbox-1" });
    assert.deepEqual(email.tags, [{ name: "template", value: "welcome" }]);
  });
});

Deno.test("a repeated Idempotency-Key with the same body answers the first id and sends nothing", async () => {
  await withResend(async (resend) => {
    const first = await read(await send(resend, EMAIL, { key: "welcome/outbox-1" }));
    // The same payload with its keys in another order is the same request.
    const reordered = Object.fromEntries(Object.entries(EMAIL).reverse());
    const second = await read(await send(resend, reordered, { key: "welcome/outbox-1" }));

    assert.equal(second.status, 200);
    assert.equal(second.body.id, first.body.id);
    assert.equal(resend.mailbox().length, 1);
    assert.equal(resend.mailbox()[0].idempotencyKey, "welcome/outbox-1");
    assert.equal(resend.requests(), 2);
  });
});

Deno.test("a repeated Idempotency-Key with another body is refused 409 invalid_idempotent_request", async () => {
  await withResend(async (resend) => {
    await read(await send(resend, EMAIL, { key: "k1" }));
    const conflict = await read(await send(resend, { ...EMAIL, subject: "Other" }, { key: "k1" }));
    assertResendError(conflict, 409, "invalid_idempotent_request");
    assert.equal(resend.mailbox().length, 1);
  });
});

Deno.test("an Idempotency-Key is forgotten after 24 hours", async () => {
  let now = new Date("2030-01-01T00:00:00Z");
  await withResend(async (resend) => {
    const first = await read(await send(resend, EMAIL, { key: "k1" }));
    now = new Date(now.getTime() + 24 * 60 * 60 * 1000 - 1);
    const within = await read(await send(resend, EMAIL, { key: "k1" }));
    now = new Date(now.getTime() + 1);
    const after = await read(await send(resend, { ...EMAIL, subject: "New" }, { key: "k1" }));

    assert.equal(within.body.id, first.body.id);
    assert.equal(after.status, 200);
    assert.notEqual(after.body.id, first.body.id);
    assert.equal(resend.mailbox().length, 2);
  }, { now: () => now });
});

Deno.test("a request reusing a key still in progress is refused 409 concurrent_idempotent_requests", async () => {
  await withResend(async (resend) => {
    // The first request's body arrives slowly, so it is still in progress when the second comes.
    const body = new TransformStream<Uint8Array, Uint8Array>();
    const writer = body.writable.getWriter();
    const encoded = new TextEncoder().encode(JSON.stringify(EMAIL));
    const slow = fetch(`${resend.url}/emails`, {
      method: "POST",
      headers: { authorization: `Bearer ${resend.apiKey}`, "idempotency-key": "k1" },
      body: body.readable,
      duplex: "half",
    } as RequestInit);
    await writer.write(encoded.subarray(0, 10)); // resolves once fetch has taken the chunk
    while (resend.requests() < 1) await new Promise((resolve) => setTimeout(resolve, 5));

    const concurrent = await read(await send(resend, EMAIL, { key: "k1" }));
    assertResendError(concurrent, 409, "concurrent_idempotent_requests");

    await writer.write(encoded.subarray(10));
    await writer.close();
    const first = await read(await slow);
    assert.equal(first.status, 200);
    const retry = await read(await send(resend, EMAIL, { key: "k1" }));
    assert.equal(retry.body.id, first.body.id);
    assert.equal(resend.mailbox().length, 1);
  });
});

Deno.test("an Idempotency-Key longer than 256 characters is refused 400", async () => {
  await withResend(async (resend) => {
    const answer = await read(await send(resend, EMAIL, { key: "k".repeat(257) }));
    assertResendError(answer, 400, "invalid_idempotency_key");
    assert.equal((await send(resend, EMAIL, { key: "k".repeat(256) })).status, 200);
  });
});

Deno.test("the emulator refuses invalid emails with Resend's 422 and sends nothing", async () => {
  const cases: [string, unknown, string][] = [
    ["missing from", { ...EMAIL, from: undefined }, "missing_required_field"],
    ["missing to", { ...EMAIL, to: undefined }, "missing_required_field"],
    ["missing subject", { ...EMAIL, subject: undefined }, "missing_required_field"],
    [
      "neither html nor text",
      { ...EMAIL, html: undefined, text: undefined },
      "missing_required_field",
    ],
    ["from without @", { ...EMAIL, from: "acme.test" }, "validation_error"],
    ["from with a space", { ...EMAIL, from: "hello @acme.test" }, "validation_error"],
    [
      "from with CR LF",
      { ...EMAIL, from: "A <a@acme.test>\r\nBcc: x@evil.test" },
      "validation_error",
    ],
    [
      "named from without brackets closed",
      { ...EMAIL, from: "Acme <a@acme.test" },
      "validation_error",
    ],
    ["to not an address", { ...EMAIL, to: "ada" }, "validation_error"],
    ["to an empty array", { ...EMAIL, to: [] }, "validation_error"],
    ["to a number", { ...EMAIL, to: 42 }, "validation_error"],
    ["to with a non-string", { ...EMAIL, to: ["ada@example.com", 1] }, "validation_error"],
    [
      "to with 51 addresses",
      { ...EMAIL, to: Array.from({ length: 51 }, (_, i) => `u${i}@example.com`) },
      "validation_error",
    ],
    ["an empty subject", { ...EMAIL, subject: "  " }, "validation_error"],
    ["a non-string subject", { ...EMAIL, subject: ["Hi"] }, "validation_error"],
    ["a non-string html", { ...EMAIL, html: 1 }, "validation_error"],
    [
      "a header with LF",
      { ...EMAIL, headers: { "X-A": "a\nBcc: x@evil.test" } },
      "validation_error",
    ],
    ["a tag with a space", { ...EMAIL, tags: [{ name: "a b", value: "c" }] }, "validation_error"],
  ];
  await withResend(async (resend) => {
    for (const [label, body, name] of cases) {
      const answer = await read(await send(resend, body));
      assert.equal(answer.status, 422, label);
      assert.equal(answer.body.name, name, label);
      assertResendError(answer, 422, name);
    }
    assert.deepEqual(resend.mailbox(), []);
    assert.equal(resend.requests(), cases.length);
  });
});

Deno.test("the emulator refuses a body that is not a JSON object with 400 validation_error", async () => {
  await withResend(async (resend) => {
    for (const body of ["{", "[]", "null", '"text"']) {
      assertResendError(await read(await send(resend, body)), 400, "validation_error");
    }
    assert.deepEqual(resend.mailbox(), []);
  });
});

Deno.test("a missing bearer key is 401 missing_api_key and a wrong one 403 invalid_api_key", async () => {
  await withResend(async (resend) => {
    for (const auth of [null, "", `Basic ${btoa("user:pass")}`, resend.apiKey, "Bearer"]) {
      assertResendError(await read(await send(resend, EMAIL, { auth })), 401, "missing_api_key");
    }
    for (const auth of ["Bearer re_wrong", `Bearer ${resend.apiKey}x`]) {
      assertResendError(await read(await send(resend, EMAIL, { auth })), 403, "invalid_api_key");
    }
    assert.deepEqual(resend.mailbox(), []);
    assert.equal(resend.requests(), 7);
  });
});

Deno.test("the emulator accepts the API key it was given", async () => {
  await withResend(async (resend) => {
    assert.equal(resend.apiKey, "re_given_key");
    assert.equal((await send(resend, EMAIL, { auth: "Bearer re_given_key" })).status, 200);
  }, { apiKey: "re_given_key" });
});

Deno.test("failNext plays Resend's 429 with retry-after, then answers normally", async () => {
  await withResend(async (resend) => {
    resend.failNext({ status: 429 }, 2);
    for (let i = 0; i < 2; i++) {
      const limited = await read(await send(resend, EMAIL));
      assertResendError(limited, 429, "rate_limit_exceeded");
      assert.equal(limited.headers.get("retry-after"), "1");
    }
    assert.equal((await send(resend, EMAIL)).status, 200);
    assert.equal(resend.mailbox().length, 1);
    assert.equal(resend.requests(), 3);
  });
});

Deno.test("failNext plays 500, 422 and other statuses as Resend-shaped errors, in queue order", async () => {
  await withResend(async (resend) => {
    resend.failNext({ status: 500 });
    resend.failNext({ status: 422 });
    resend.failNext({ status: 503 });
    assertResendError(await read(await send(resend, EMAIL)), 500, "internal_server_error");
    assertResendError(await read(await send(resend, EMAIL)), 422, "validation_error");
    assertResendError(await read(await send(resend, EMAIL)), 503, "internal_server_error");
    assert.equal((await send(resend, EMAIL)).status, 200);
    assert.equal(resend.mailbox().length, 1);
  });
});

Deno.test("a fault is played before authentication", async () => {
  await withResend(async (resend) => {
    resend.failNext({ status: 500 });
    const answer = await read(await send(resend, EMAIL, { auth: "Bearer re_wrong" }));
    assertResendError(answer, 500, "internal_server_error");
  });
});

Deno.test('failNext("network") fails the client\'s fetch once and sends nothing', async () => {
  await withResend(async (resend) => {
    resend.failNext("network");
    await assert.rejects(send(resend, EMAIL, { key: "k1" }), TypeError);
    assert.deepEqual(resend.mailbox(), []);
    assert.equal(resend.requests(), 1, "fetch did not replay the request behind our back");

    const retry = await read(await send(resend, EMAIL, { key: "k1" }));
    assert.equal(retry.status, 200);
    assert.equal(resend.mailbox().length, 1);
    assert.equal(resend.requests(), 2);
  });
});

Deno.test('failNext("network_after_send") sends, then fails the fetch; a keyed retry sends nothing more', async () => {
  await withResend(async (resend) => {
    resend.failNext("network_after_send");
    await assert.rejects(send(resend, EMAIL, { key: "k1" }), TypeError);
    const [sent] = resend.mailbox();
    assert.ok(sent);
    assert.equal(resend.requests(), 1);

    const retry = await read(await send(resend, EMAIL, { key: "k1" }));
    assert.equal(retry.body.id, sent.id);
    assert.equal(resend.mailbox().length, 1);
  });
});

Deno.test('failNext("hang") never answers, so the client deadline decides', async () => {
  await withResend(async (resend) => {
    resend.failNext("hang");
    const startedAt = performance.now();
    await assert.rejects(send(resend, EMAIL, { signal: AbortSignal.timeout(100) }));
    assert.ok(performance.now() - startedAt >= 90);
    assert.deepEqual(resend.mailbox(), []);
    assert.equal((await send(resend, EMAIL)).status, 200);
  });
});

Deno.test("close drops a request left hanging and resolves", async () => {
  const resend = await startResendEmulator();
  resend.failNext("hang");
  const pending = assert.rejects(send(resend, EMAIL), TypeError);
  while (resend.requests() < 1) await new Promise((resolve) => setTimeout(resolve, 5));
  await resend.close();
  await pending;
  await resend.close(); // closing twice is harmless
  await assert.rejects(send(resend, EMAIL), TypeError);
});

Deno.test("failNext refuses a status outside 400 to 599 and a non-positive count", async () => {
  await withResend(async (resend) => {
    assert.throws(() => resend.failNext({ status: 200 }), RangeError);
    assert.throws(() => resend.failNext({ status: 600 }), RangeError);
    assert.throws(() => resend.failNext("network", 0), RangeError);
    assert.throws(() => resend.failNext("network", 1.5), RangeError);
    assert.equal((await send(resend, EMAIL)).status, 200);
  });
});

Deno.test("GET /emails/{id} answers the stored email in Resend's shape", async () => {
  await withResend(async (resend) => {
    const { body: { id } } = await read(
      await send(resend, { ...EMAIL, reply_to: ["r@acme.test"] }),
    );
    const answer = await get(resend, `/emails/${id}`);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, {
      object: "email",
      id,
      to: [EMAIL.to],
      from: EMAIL.from,
      created_at: "2030-01-01T00:00:00.000Z",
      subject: EMAIL.subject,
      html: EMAIL.html,
      text: EMAIL.text,
      bcc: null,
      cc: null,
      reply_to: ["r@acme.test"],
      last_event: "delivered",
      scheduled_at: null,
      tags: [],
    });
    assert.equal(resend.requests(), 1, "a GET is not a send");
  }, { now: () => new Date("2030-01-01T00:00:00Z") });
});

Deno.test("GET /emails/{id} refuses an unknown id with 404 and a wrong key with 403", async () => {
  await withResend(async (resend) => {
    const { body: { id } } = await read(await send(resend, EMAIL));
    assertResendError(await get(resend, `/emails/${crypto.randomUUID()}`), 404, "not_found");
    assertResendError(await get(resend, `/emails/${id}`, null), 401, "missing_api_key");
    assertResendError(
      await get(resend, `/emails/${id}`, "Bearer re_wrong"),
      403,
      "invalid_api_key",
    );
  });
});

Deno.test("GET /_mailbox lists every accepted email without authentication", async () => {
  await withResend(async (resend) => {
    await send(resend, EMAIL);
    await send(resend, { ...EMAIL, to: ["bob@example.com"] });
    const answer = await get(resend, "/_mailbox", null);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.object, "list");
    assert.deepEqual(answer.body.data, resend.mailbox());
    assert.deepEqual(answer.body.data.map((email: { to: string[] }) => email.to[0]), [
      "ada@example.com",
      "bob@example.com",
    ]);
  });
});

Deno.test("mailbox() returns copies that cannot change the emulator's state", async () => {
  await withResend(async (resend) => {
    await send(resend, EMAIL);
    resend.mailbox()[0].to.push("eve@evil.test");
    resend.mailbox().pop();
    assert.deepEqual(resend.mailbox()[0].to, [EMAIL.to]);
  });
});

Deno.test("unknown routes answer 404 not_found and wrong methods 405, in JSON", async () => {
  await withResend(async (resend) => {
    assertResendError(await get(resend, "/domains"), 404, "not_found");
    assertResendError(await get(resend, "/emails"), 405, "method_not_allowed");
    const deleted = await fetch(`${resend.url}/emails/x`, { method: "DELETE" });
    assertResendError(await read(deleted), 405, "method_not_allowed");
    assert.equal(resend.requests(), 0);
  });
});

Deno.test("the emulator takes 500 emails in parallel, each once", async () => {
  await withResend(async (resend) => {
    const ids = await Promise.all(
      Array.from({ length: 500 }, async (_, i) => {
        const answer = await read(
          await send(resend, { ...EMAIL, to: `user${i}@example.com` }, { key: `outbox-${i}` }),
        );
        assert.equal(answer.status, 200);
        return answer.body.id as string;
      }),
    );
    assert.equal(new Set(ids).size, 500);
    assert.equal(resend.mailbox().length, 500);
    assert.equal(resend.requests(), 500);
  });
});
