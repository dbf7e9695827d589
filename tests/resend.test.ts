/**
 * The Resend client (`_shared/resend.ts`) on the wire, against the local emulator, and with a
 * replaced `fetch` for answers the emulator does not give: every outcome is a value, never a
 * throw, and no error text carries an address or the key.
 */
import assert from "node:assert/strict";
import { type ResendEmulator, startResendEmulator } from "../local/emulators/resend.ts";
import {
  createResendClient,
  type OutgoingEmail,
  type ResendClientOptions,
} from "../supabase/functions/_shared/resend.ts";

const email: OutgoingEmail = {
  to: "ada@example.com",
  subject: "Welcome to Acme",
  html: "<p>Hi Ada</p>",
  text: "Hi Ada",
  tags: [{ name: "template", value: "welcome" }],
};

async function withEmulator(
  fn: (resend: ResendEmulator) => Promise<void>,
): Promise<void> {
  const resend = await startResendEmulator();
  try {
    await fn(resend);
  } finally {
    await resend.close();
  }
}

function clientFor(resend: ResendEmulator, options: ResendClientOptions = {}, apiKey?: string) {
  return createResendClient({
    resendApiKey: apiKey ?? resend.apiKey,
    resendApiUrl: resend.url,
    from: "Acme <hello@acme.test>",
  }, options);
}

/** A client whose fetch answers `status` with `body` and `headers`. */
function answering(status: number, body: unknown, headers: Record<string, string> = {}) {
  const requests: Request[] = [];
  const client = createResendClient(
    { resendApiKey: "re_test_key", resendApiUrl: "https://api.resend.test", from: "a@acme.test" },
    {
      fetch: (input, init) => {
        requests.push(new Request(input, init));
        return Promise.resolve(
          new Response(typeof body === "string" ? body : JSON.stringify(body), {
            status,
            headers: { "content-type": "application/json", ...headers },
          }),
        );
      },
    },
  );
  return { client, requests };
}

Deno.test("send() posts the email with the idempotency key and answers Resend's id", async () => {
  await withEmulator(async (resend) => {
    const key = crypto.randomUUID();
    const result = await clientFor(resend).send(email, key);
    assert.equal(result.kind, "sent");
    const [sent] = resend.mailbox();
    assert.equal(result.kind === "sent" && result.id, sent.id);
    assert.equal(sent.idempotencyKey, key);
    assert.equal(sent.from, "Acme <hello@acme.test>");
    assert.deepEqual(sent.to, ["ada@example.com"]);
    assert.equal(sent.html, email.html);
    assert.equal(sent.text, email.text);
    assert.deepEqual(sent.tags, email.tags);

    // The same key again: Resend's first id, and nothing sent twice.
    const again = await clientFor(resend).send(email, key);
    assert.deepEqual(again, result);
    assert.equal(resend.mailbox().length, 1);
  });
});

Deno.test("send() answers retryable for 429 (with Retry-After), 5xx and a broken connection", async () => {
  await withEmulator(async (resend) => {
    const client = clientFor(resend);
    resend.failNext({ status: 429 });
    const limited = await client.send(email, crypto.randomUUID());
    assert.equal(limited.kind, "retryable");
    assert.equal(limited.kind === "retryable" && limited.code, "http_429");
    assert.equal(limited.kind === "retryable" && limited.retryAfterSeconds, 1);

    for (const status of [500, 502, 503]) {
      resend.failNext({ status });
      const failed = await client.send(email, crypto.randomUUID());
      assert.equal(failed.kind, "retryable", String(status));
    }
    resend.failNext("network");
    const broken = await client.send(email, crypto.randomUUID());
    assert.equal(broken.kind, "retryable");
    assert.equal(broken.kind === "retryable" && broken.code, "network");
    assert.equal(resend.mailbox().length, 0);
  });
});

Deno.test("send() gives up on a request that hangs past its deadline, as retryable", async () => {
  await withEmulator(async (resend) => {
    resend.failNext("hang");
    const startedAt = performance.now();
    const result = await clientFor(resend, { timeoutMs: 200 }).send(email, crypto.randomUUID());
    assert.ok(performance.now() - startedAt < 2_000);
    assert.equal(result.kind, "retryable");
    assert.equal(result.kind === "retryable" && result.code, "timeout");
  });
});

Deno.test("send() answers rejected for a 4xx the email itself caused", async () => {
  await withEmulator(async (resend) => {
    const result = await clientFor(resend).send({ ...email, to: "not an address" }, "k1");
    assert.equal(result.kind, "rejected");
    assert.match(result.kind === "rejected" ? result.error : "", /^422 validation_error: /);
    resend.failNext({ status: 400 });
    assert.equal((await clientFor(resend).send(email, "k2")).kind, "rejected");
  });
});

Deno.test("send() answers misconfigured RESEND_API_KEY when Resend refuses the key, without the key", async () => {
  await withEmulator(async (resend) => {
    const result = await clientFor(resend, {}, "re_wrong_key_123").send(email, "k");
    assert.equal(result.kind, "misconfigured");
    assert.equal(result.kind === "misconfigured" && result.variable, "RESEND_API_KEY");
    assert.ok(!JSON.stringify(result).includes("re_wrong_key_123"));
  });
  const restricted = answering(401, { statusCode: 401, name: "restricted_api_key", message: "x" });
  assert.equal((await restricted.client.send(email, "k")).kind, "misconfigured");
});

Deno.test("send() answers misconfigured EMAIL_FROM for invalid_from_address", async () => {
  const { client } = answering(403, {
    statusCode: 403,
    name: "invalid_from_address",
    message: "Invalid `from` field.",
  });
  const result = await client.send(email, "k");
  assert.equal(result.kind, "misconfigured");
  assert.equal(result.kind === "misconfigured" && result.variable, "EMAIL_FROM");
});

Deno.test("send() retries a request still in progress under the same key, and 408", async () => {
  const concurrent = answering(409, {
    statusCode: 409,
    name: "concurrent_idempotent_requests",
    message: "Same idempotency key used while original request is still in progress.",
  });
  assert.equal((await concurrent.client.send(email, "k")).kind, "retryable");
  const changed = answering(409, { statusCode: 409, name: "invalid_idempotent_request" });
  assert.equal((await changed.client.send(email, "k")).kind, "rejected");
  assert.equal((await answering(408, {}).client.send(email, "k")).kind, "retryable");
});

Deno.test("send() masks addresses in Resend's error text", async () => {
  const { client } = answering(403, {
    statusCode: 403,
    name: "validation_error",
    message: "You can only send testing emails to your own email address (owner@acme.test).",
  });
  const result = await client.send(email, "k");
  assert.equal(result.kind, "rejected");
  const error = result.kind === "rejected" ? result.error : "";
  assert.ok(!error.includes("owner@acme.test"), error);
  assert.match(error, /o\*\*\*@acme\.test/);
});

Deno.test("send() reads the rate-limit headers and treats a 2xx without an id as retryable", async () => {
  const ok = answering(200, { id: "email-1" }, {
    "ratelimit-remaining": "0",
    "ratelimit-reset": "1",
  });
  assert.deepEqual(await ok.client.send(email, "k"), {
    kind: "sent",
    id: "email-1",
    rateLimit: { remaining: 0, resetSeconds: 1 },
  });
  const [request] = ok.requests;
  assert.equal(request.headers.get("authorization"), "Bearer re_test_key");
  assert.equal(request.headers.get("idempotency-key"), "k");

  assert.equal((await answering(200, "not json").client.send(email, "k")).kind, "retryable");
  assert.equal((await answering(200, { id: "" }).client.send(email, "k")).kind, "retryable");
});

Deno.test("send() turns a fetch that throws into retryable, never a throw", async () => {
  const client = createResendClient(
    { resendApiKey: "re_k", resendApiUrl: "https://api.resend.test", from: "a@acme.test" },
    { fetch: () => Promise.reject(new TypeError("connection refused to ada@example.com")) },
  );
  const result = await client.send(email, "k");
  assert.equal(result.kind, "retryable");
  assert.ok(!JSON.stringify(result).includes("ada@example.com"));
});
