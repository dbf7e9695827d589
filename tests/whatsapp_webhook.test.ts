import assert from "node:assert/strict";
import {
  secretsEqual,
  timingSafeEqual,
  verifyMetaSignature,
} from "../supabase/functions/_shared/signatures.ts";
import { createHandler } from "../supabase/functions/whatsapp-webhook/handler.ts";
import { startLocalServer } from "../local/server.ts";
import { dbTest, testSql } from "./support/db.ts";
import { testDeps, testEnv } from "./support/deps.ts";
import { call, type CallResult } from "./support/http.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures: WhatsApp Cloud API deliveries as Meta sends them, signed as Meta signs them.
// ---------------------------------------------------------------------------------------------

const appSecret = "test-whatsapp-app-secret-0b1c2d3e";
const verifyToken = "test-verify-token-7f3a";
const whatsappEnv = { WHATSAPP_VERIFY_TOKEN: verifyToken, WHATSAPP_APP_SECRET: appSecret };
const businessAccountId = "102290129340398";
const phoneNumberId = "106540352242922";
const encoder = new TextEncoder();

function handler() {
  return createHandler(testDeps({ env: whatsappEnv }));
}

/** A fresh wamid, shaped like Meta's. */
function wamid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `wamid.HBgL${btoa(String.fromCharCode(...bytes))}`;
}

/** A fresh WhatsApp id: E.164 digits without the '+'. */
function waId(): string {
  return `1555${
    String(crypto.getRandomValues(new Uint32Array(1))[0] % 10_000_000).padStart(7, "0")
  }`;
}

type Json = Record<string, unknown>;

function textMessage(from: string, id = wamid(), body = "Does it come in another color?"): Json {
  return { from, id, timestamp: "1749416383", type: "text", text: { body } };
}

function contact(id: string, name = "Sheena Nelson"): Json {
  return { profile: { name }, wa_id: id };
}

/** One change of the `messages` field. */
function messagesChange(value: Json): Json {
  return {
    value: {
      messaging_product: "whatsapp",
      metadata: { display_phone_number: "15550783881", phone_number_id: phoneNumberId },
      ...value,
    },
    field: "messages",
  };
}

function delivery(...changes: Json[]): Json {
  return {
    object: "whatsapp_business_account",
    entry: [{ id: businessAccountId, changes }],
  };
}

function status(id: string, value: string, recipient: string, timestamp: string): Json {
  return {
    id,
    status: value,
    timestamp,
    recipient_id: recipient,
    conversation: {
      id: "6ceb9d929c3e2f2d8d5ba6f4e4a1d6b1",
      expiration_timestamp: "1750350180",
      origin: { type: "utility" },
    },
    pricing: { billable: true, pricing_model: "PMP", category: "utility", type: "regular" },
  };
}

const reengagementError = {
  code: 131047,
  title: "Re-engagement message",
  message: "Re-engagement message",
  error_data: {
    details:
      "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
  },
  href: "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
};

function failedStatus(id: string, recipient: string, timestamp: string): Json {
  return { id, status: "failed", timestamp, recipient_id: recipient, errors: [reengagementError] };
}

async function hmacHex(
  body: string | Uint8Array,
  secret = appSecret,
  hash = "SHA-256",
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash },
    false,
    ["sign"],
  );
  const data = typeof body === "string" ? encoder.encode(body) : body;
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, data as Uint8Array<ArrayBuffer>),
  );
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** POSTs a delivery signed with the app secret (or with the signature header given). */
async function post(
  body: Json | string | Uint8Array,
  options: { signature?: string | null; handle?: ReturnType<typeof handler> } = {},
): Promise<CallResult> {
  const raw = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  const headers: Record<string, string> = { "content-type": "application/json" };
  const signature = options.signature === undefined
    ? `sha256=${await hmacHex(raw)}`
    : options.signature;
  if (signature !== null) headers["x-hub-signature-256"] = signature;
  return await call(options.handle ?? handler(), "whatsapp-webhook", {
    method: "POST",
    body: raw,
    headers,
  });
}

// deno-lint-ignore no-explicit-any
async function rows(...wamids: string[]): Promise<any[]> {
  return [
    ...await testSql()`
    select * from whatsapp.message where wamid = any(${wamids}) order by array_position(${wamids}::text[], wamid)`,
  ];
}

function verification(params: Record<string, string>): string {
  return `whatsapp-webhook?${new URLSearchParams(params)}`;
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

Deno.test("verifyMetaSignature() accepts sha256= and the lowercase hex HMAC of the raw bytes", async () => {
  const body = encoder.encode('{"object":"whatsapp_business_account","entry":[]}');
  assert.equal(await verifyMetaSignature(body, `sha256=${await hmacHex(body)}`, appSecret), true);
});

Deno.test("verifyMetaSignature() returns false on malformed, foreign or wrong headers", async () => {
  const body = encoder.encode('{"object":"whatsapp_business_account","entry":[]}');
  const hex = await hmacHex(body);
  for (
    const header of [
      null,
      undefined,
      "",
      hex,
      `sha256=${hex.toUpperCase()}`,
      `SHA256=${hex}`,
      `sha256=${hex.slice(0, 63)}`,
      `sha256=${hex}0`,
      ` sha256=${hex}`,
      `sha256=${hex}\n`,
      `sha1=${await hmacHex(body, appSecret, "SHA-1")}`,
      `sha256=${await hmacHex(body, "another-app-secret")}`,
      `sha256=${"0".repeat(64)}`,
    ]
  ) {
    assert.equal(await verifyMetaSignature(body, header, appSecret), false, String(header));
  }
  assert.equal(await verifyMetaSignature(body, `sha256=${hex}`, ""), false);
});

Deno.test("timingSafeEqual() and secretsEqual() compare whole values", async () => {
  assert.equal(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
  assert.equal(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  assert.equal(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])), false);
  assert.equal(await secretsEqual("token", "token"), true);
  assert.equal(await secretsEqual("token", "token2"), false);
  assert.equal(await secretsEqual("", "token"), false);
});

// ---------------------------------------------------------------------------------------------
// GET: Meta's subscription check
// ---------------------------------------------------------------------------------------------

const goodVerification = {
  "hub.mode": "subscribe",
  "hub.verify_token": verifyToken,
  "hub.challenge": "1158201444",
};

dbTest("whatsapp-webhook verification answers the challenge as text/plain", async () => {
  const res = await handler()(
    new Request(`http://127.0.0.1:54321/functions/v1/${verification(goodVerification)}`),
  );
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "1158201444");
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.ok(res.headers.get("x-request-id"));
});

dbTest("whatsapp-webhook verification refuses a wrong token with 403", async () => {
  for (const token of ["wrong-token", `${verifyToken}x`, verifyToken.slice(0, -1), ""]) {
    const res = await call(
      handler(),
      verification({ ...goodVerification, "hub.verify_token": token }),
    );
    assert.equal(res.status, 403, token);
    assert.equal(res.body.code, "FORBIDDEN");
  }
  const { "hub.verify_token": _, ...noToken } = goodVerification;
  const res = await call(handler(), verification(noToken));
  assert.equal(res.status, 403);
  assert.equal(res.body.code, "FORBIDDEN");
});

dbTest("whatsapp-webhook verification refuses a mode other than subscribe with 403", async () => {
  for (const mode of ["unsubscribe", "SUBSCRIBE", ""]) {
    const res = await call(handler(), verification({ ...goodVerification, "hub.mode": mode }));
    assert.equal(res.status, 403, mode);
    assert.equal(res.body.code, "FORBIDDEN");
  }
  const { "hub.mode": _, ...noMode } = goodVerification;
  const res = await call(handler(), verification(noMode));
  assert.equal(res.status, 403);
});

dbTest(
  "whatsapp-webhook verification refuses a missing or oversized challenge with 403",
  async () => {
    const { "hub.challenge": _, ...noChallenge } = goodVerification;
    let res = await call(handler(), verification(noChallenge));
    assert.equal(res.status, 403);
    assert.equal(res.body.code, "FORBIDDEN");
    res = await call(handler(), verification({ ...goodVerification, "hub.challenge": "" }));
    assert.equal(res.status, 403);
    res = await call(
      handler(),
      verification({ ...goodVerification, "hub.challenge": "9".repeat(257) }),
    );
    assert.equal(res.status, 403);
  },
);

dbTest(
  "whatsapp-webhook answers 503 naming the variable when WhatsApp is not configured",
  async () => {
    const unconfigured = createHandler(
      testDeps({ env: { WHATSAPP_VERIFY_TOKEN: verifyToken } }),
    );
    let res = await call(unconfigured, verification(goodVerification));
    assert.equal(res.status, 503);
    assert.equal(res.body.code, "WHATSAPP_NOT_CONFIGURED");
    assert.match(res.body.message, /WHATSAPP_APP_SECRET/);
    assert.ok(!res.body.message.includes(verifyToken));

    const id = wamid();
    res = await post(delivery(messagesChange({ messages: [textMessage(waId(), id)] })), {
      handle: unconfigured,
    });
    assert.equal(res.status, 503);
    assert.equal(res.body.code, "WHATSAPP_NOT_CONFIGURED");
    assert.deepEqual(await rows(id), []);
  },
);

dbTest("whatsapp-webhook refuses other methods with 405 and Allow", async () => {
  const res = await call(handler(), "whatsapp-webhook", { method: "PUT", body: "{}" });
  assert.equal(res.status, 405);
  assert.equal(res.body.code, "METHOD_NOT_ALLOWED");
  assert.equal(res.headers.get("allow"), "GET, POST");
});

// ---------------------------------------------------------------------------------------------
// POST: messages
// ---------------------------------------------------------------------------------------------

dbTest(
  "whatsapp-webhook stores a signed text message once though it is delivered twice",
  async () => {
    const from = waId();
    const message = textMessage(from);
    const body = delivery(messagesChange({ contacts: [contact(from)], messages: [message] }));
    const deps = testDeps({ env: whatsappEnv });
    const handle = createHandler(deps);

    const first = await post(body, { handle });
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, { received: 1, statuses: 0 });
    assert.match(first.headers.get("content-type") ?? "", /^application\/json/);
    assert.ok(first.headers.get("x-request-id"));

    const [stored] = await rows(message.id as string);
    assert.equal(stored.direction, "inbound");
    assert.equal(stored.wa_id, from);
    assert.equal(stored.profile_name, "Sheena Nelson");
    assert.equal(stored.phone_number_id, phoneNumberId);
    assert.equal(stored.type, "text");
    assert.equal(stored.text_body, "Does it come in another color?");
    assert.equal(stored.status, "received");
    assert.equal(stored.sent_at.toISOString(), new Date(1749416383 * 1000).toISOString());
    assert.equal(stored.person_id, null);
    assert.equal(stored.errors, null);
    assert.deepEqual(stored.raw, message);

    deps.clock.advanceSeconds(60);
    const again = await post(body, { handle });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { received: 1, statuses: 0 });
    const after = await rows(message.id as string);
    assert.equal(after.length, 1);
    assert.deepEqual(after[0], stored); // nothing changed, updated_at included
  },
);

dbTest(
  "whatsapp-webhook stores image, location and unknown message types with their raw JSON",
  async () => {
    const from = waId();
    const image = {
      from,
      id: wamid(),
      timestamp: "1749416390",
      type: "image",
      image: {
        caption: "Does it come in another color?",
        mime_type: "image/jpeg",
        sha256: "P2hGXJjmxiyVT7sVMoBzXq6Iz8hPyJEKD8HUh6sCPJ4=",
        id: "1003383421387256",
      },
    };
    const location = {
      from,
      id: wamid(),
      timestamp: "1749416391",
      type: "location",
      location: {
        address: "1 Hacker Way, Menlo Park, CA 94025",
        latitude: 37.483307,
        longitude: -122.148981,
        name: "Meta Headquarters",
        url: "https://www.meta.com",
      },
    };
    const unsupported = {
      from,
      id: wamid(),
      timestamp: "1749416392",
      type: "unsupported",
      errors: [{
        code: 131051,
        title: "Message type unknown",
        message: "Message type unknown",
        error_data: { details: "Message type is currently not supported." },
      }],
      unsupported: { type: "edit" },
    };
    // A type nobody knows yet, with fields nobody knows yet: stored, not refused.
    const future = {
      from,
      id: wamid(),
      timestamp: "1749416393",
      type: "hologram",
      hologram: { depth: 3, frames: [1, 2] },
      context: { forwarded: true },
    };
    const messages = [image, location, unsupported, future];
    const res = await post(delivery(messagesChange({ contacts: [contact(from)], messages })));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { received: 4, statuses: 0 });

    const stored = await rows(...messages.map((m) => m.id));
    assert.deepEqual(stored.map((r) => r.type), ["image", "location", "unsupported", "hologram"]);
    assert.deepEqual(stored.map((r) => r.raw), messages);
    assert.deepEqual(stored.map((r) => r.text_body), [null, null, null, null]);
    assert.deepEqual(stored.map((r) => r.status), ["received", "received", "received", "received"]);
    assert.deepEqual(stored[2].errors, unsupported.errors);
    assert.equal(stored[3].errors, null);
  },
);

dbTest(
  "whatsapp-webhook stores every message of several entries and changes in one delivery",
  async () => {
    const [ana, ben, cleo] = [waId(), waId(), waId()];
    const [a1, a2, b1, c1] = [
      textMessage(ana),
      textMessage(ana),
      textMessage(ben),
      textMessage(cleo),
    ];
    const outbound = wamid();
    const callId = `wacid.${crypto.randomUUID()}`;
    const body = {
      object: "whatsapp_business_account",
      entry: [
        {
          id: businessAccountId,
          changes: [
            messagesChange({ contacts: [contact(ana, "Ana")], messages: [a1, a2] }),
            messagesChange({
              contacts: [contact(ben, "Ben")],
              messages: [b1],
              statuses: [status(outbound, "sent", cleo, "1749416400")],
            }),
            // Another field of the same account: not messages, ignored.
            {
              value: {
                event: "APPROVED",
                message_template_id: 1234567890,
                message_template_name: "order_update",
                message_template_language: "en_US",
                reason: "NONE",
              },
              field: "message_template_status_update",
            },
            // Calling statuses look like message statuses but are not: ignored too.
            {
              value: {
                messaging_product: "whatsapp",
                metadata: { display_phone_number: "15550783881", phone_number_id: phoneNumberId },
                statuses: [{
                  id: callId,
                  status: "RINGING",
                  timestamp: "1749416401",
                  recipient_id: cleo,
                  type: "call",
                }],
              },
              field: "calls",
            },
          ],
        },
        {
          id: "987654321098765",
          changes: [messagesChange({ contacts: [contact(cleo, "Cleo")], messages: [c1] })],
        },
      ],
    };
    const res = await post(body);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { received: 4, statuses: 1 });

    const stored = await rows(
      a1.id as string,
      a2.id as string,
      b1.id as string,
      c1.id as string,
      outbound,
    );
    assert.deepEqual(stored.map((r) => r.profile_name), ["Ana", "Ana", "Ben", "Cleo", null]);
    assert.deepEqual(stored.map((r) => r.wa_id), [ana, ana, ben, cleo, cleo]);
    assert.deepEqual(
      stored.map((r) => r.direction),
      ["inbound", "inbound", "inbound", "inbound", "outbound"],
    );
    assert.equal(stored[4].status, "sent");
    assert.deepEqual(await rows(callId), []);
  },
);

dbTest("whatsapp-webhook stores concurrent redeliveries once, without deadlocks", async () => {
  const to = waId();
  const messages = Array.from({ length: 10 }, () => textMessage(waId()));
  const outbound = Array.from({ length: 10 }, () => wamid());
  const statusesOf = (value: string) =>
    outbound.map((id) => status(id, value, to, value === "read" ? "1750263790" : "1750263775"));
  // The same messages and statuses, in different orders, delivered 12 times at once.
  const bodies = Array.from({ length: 12 }, (_, i) =>
    delivery(messagesChange({
      messages: i % 2 ? [...messages].reverse() : messages,
      statuses: i % 3 === 0
        ? statusesOf("read").reverse()
        : statusesOf(i % 3 === 1 ? "delivered" : "sent"),
    })));
  const handle = handler();
  const results = await Promise.all(bodies.map((body) => post(body, { handle })));
  assert.deepEqual(results.map((r) => r.status), bodies.map(() => 200));
  const stored = await rows(...messages.map((m) => m.id as string), ...outbound);
  assert.equal(stored.length, 20);
  assert.deepEqual(stored.slice(10).map((r) => r.status), outbound.map(() => "read"));
});

dbTest(
  "whatsapp-webhook answers 200 with zero counts for a signed delivery of another object",
  async () => {
    // An app subscribed to Page webhooks too signs them with the same secret: ours to acknowledge,
    // not to store (a 400 would have Meta retry it for days).
    const res = await post({
      object: "page",
      entry: [{ id: "1234", time: 1749416383, messaging: [{ message: { mid: "m_1" } }] }],
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { received: 0, statuses: 0 });
  },
);

// ---------------------------------------------------------------------------------------------
// POST: statuses
// ---------------------------------------------------------------------------------------------

dbTest("whatsapp-webhook applies statuses delivered in order: sent, delivered, read", async () => {
  const to = waId();
  const id = wamid();
  const expected = [["sent", "1750263773"], ["delivered", "1750263775"], ["read", "1750263790"]];
  for (const [value, timestamp] of expected) {
    const res = await post(delivery(messagesChange({
      contacts: [contact(to)],
      statuses: [status(id, value, to, timestamp)],
    })));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { received: 0, statuses: 1 });
    const [row] = await rows(id);
    assert.equal(row.status, value);
    assert.equal(row.status_at.toISOString(), new Date(Number(timestamp) * 1000).toISOString());
  }
});

dbTest(
  "whatsapp-webhook never moves a status backwards when statuses arrive out of order",
  async () => {
    const to = waId();
    const id = wamid();
    const deps = testDeps({ env: whatsappEnv });
    const handle = createHandler(deps);
    await post(delivery(messagesChange({ statuses: [status(id, "read", to, "1750263790")] })), {
      handle,
    });
    const [afterRead] = await rows(id);
    assert.equal(afterRead.status, "read");

    deps.clock.advanceSeconds(30);
    for (const [value, timestamp] of [["delivered", "1750263775"], ["sent", "1750263773"]]) {
      const res = await post(
        delivery(messagesChange({ statuses: [status(id, value, to, timestamp)] })),
        { handle },
      );
      assert.equal(res.status, 200);
    }
    const [row] = await rows(id);
    assert.deepEqual(row, afterRead); // status, status_at and updated_at untouched

    // Several statuses of one message in one delivery, in any order: the furthest wins.
    const other = wamid();
    const res = await post(delivery(messagesChange({
      statuses: [
        status(other, "delivered", to, "1750263775"),
        status(other, "read", to, "1750263790"),
        status(other, "sent", to, "1750263773"),
      ],
    })));
    assert.deepEqual(res.body, { received: 0, statuses: 3 });
    const [batched] = await rows(other);
    assert.equal(batched.status, "read");
    assert.equal(batched.status_at.toISOString(), new Date(1750263790 * 1000).toISOString());
  },
);

dbTest(
  "whatsapp-webhook creates an outbound row for a status of a message it never saw",
  async () => {
    const to = waId();
    const id = wamid();
    const res = await post(delivery(messagesChange({
      contacts: [contact(to)],
      statuses: [status(id, "sent", to, "1750263773")],
    })));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { received: 0, statuses: 1 });
    const [created] = await rows(id);
    assert.equal(created.direction, "outbound");
    assert.equal(created.status, "sent");
    assert.equal(created.wa_id, to);
    assert.equal(created.phone_number_id, phoneNumberId);
    assert.equal(created.type, null);

    // Later statuses of it apply to that row.
    await post(delivery(messagesChange({ statuses: [status(id, "delivered", to, "1750263775")] })));
    const after = await rows(id);
    assert.equal(after.length, 1);
    assert.equal(after[0].status, "delivered");
  },
);

dbTest("whatsapp-webhook keeps a failed status with its errors", async () => {
  const to = waId();
  const id = wamid();
  const deps = testDeps({ env: whatsappEnv });
  const handle = createHandler(deps);
  await post(delivery(messagesChange({ statuses: [status(id, "sent", to, "1750263773")] })), {
    handle,
  });
  const failed = delivery(messagesChange({ statuses: [failedStatus(id, to, "1750263780")] }));
  const res = await post(failed, { handle });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { received: 0, statuses: 1 });
  const [row] = await rows(id);
  assert.equal(row.status, "failed");
  assert.deepEqual(row.errors, [reengagementError]);
  assert.equal(row.status_at.toISOString(), new Date(1750263780 * 1000).toISOString());

  // The same failure delivered again, and a late `sent`, change nothing.
  deps.clock.advanceSeconds(30);
  await post(failed, { handle });
  await post(delivery(messagesChange({ statuses: [status(id, "sent", to, "1750263773")] })), {
    handle,
  });
  const [again] = await rows(id);
  assert.deepEqual(again, row);

  // A failure for a message never seen creates its row, failed, with the errors.
  const unseen = wamid();
  await post(delivery(messagesChange({ statuses: [failedStatus(unseen, to, "1750263781")] })), {
    handle,
  });
  const [created] = await rows(unseen);
  assert.equal(created.direction, "outbound");
  assert.equal(created.status, "failed");
  assert.deepEqual(created.errors, [reengagementError]);
});

dbTest("whatsapp-webhook lets delivered and read outrank failed but keeps the errors", async () => {
  const to = waId();
  const id = wamid();
  await post(delivery(messagesChange({ statuses: [failedStatus(id, to, "1750263780")] })));
  await post(delivery(messagesChange({ statuses: [status(id, "delivered", to, "1750263785")] })));
  let [row] = await rows(id);
  assert.equal(row.status, "delivered");
  assert.deepEqual(row.errors, [reengagementError]);

  // And a failure that arrives after `read` does not undo it, but is recorded.
  const other = wamid();
  await post(delivery(messagesChange({ statuses: [status(other, "read", to, "1750263790")] })));
  await post(delivery(messagesChange({ statuses: [failedStatus(other, to, "1750263780")] })));
  [row] = await rows(other);
  assert.equal(row.status, "read");
  assert.deepEqual(row.errors, [reengagementError]);
});

dbTest("whatsapp-webhook counts but does not apply a status value it does not know", async () => {
  const to = waId();
  const id = wamid();
  await post(delivery(messagesChange({ statuses: [status(id, "read", to, "1750263790")] })));
  const res = await post(delivery(messagesChange({
    statuses: [status(id, "played", to, "1750263795")],
  })));
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { received: 0, statuses: 1 });
  const [row] = await rows(id);
  assert.equal(row.status, "read");
});

dbTest("whatsapp-webhook does not let a status change an inbound message", async () => {
  const from = waId();
  const message = textMessage(from);
  await post(delivery(messagesChange({ messages: [message] })));
  await post(delivery(messagesChange({
    statuses: [status(message.id as string, "read", from, "1750263790")],
  })));
  const [row] = await rows(message.id as string);
  assert.equal(row.direction, "inbound");
  assert.equal(row.status, "received");
});

// ---------------------------------------------------------------------------------------------
// POST: signature, body and payload checks
// ---------------------------------------------------------------------------------------------

dbTest(
  "whatsapp-webhook refuses a bad or missing signature with 401 and writes nothing",
  async () => {
    const message = textMessage(waId());
    const raw = JSON.stringify(delivery(messagesChange({ messages: [message] })));
    const hex = await hmacHex(raw);
    const flipped = encoder.encode(raw);
    const at = raw.indexOf("another color");
    flipped[at] ^= 0x01; // "another" → "`nother": still valid JSON, no longer what was signed
    const cases: Array<[string, string | Uint8Array, string | null]> = [
      ["missing header", raw, null],
      ["empty header", raw, ""],
      ["wrong secret", raw, `sha256=${await hmacHex(raw, "not-the-app-secret")}`],
      ["one flipped body byte", flipped, `sha256=${hex}`],
      ["uppercase hex", raw, `sha256=${hex.toUpperCase()}`],
      ["sha1= prefix", raw, `sha1=${await hmacHex(raw, appSecret, "SHA-1")}`],
      ["no prefix", raw, hex],
    ];
    for (const [label, body, signature] of cases) {
      const res = await post(body, { signature });
      assert.equal(res.status, 401, label);
      assert.equal(res.body.code, "INVALID_SIGNATURE", label);
      assert.ok(!JSON.stringify(res.body).includes(hex), label);
    }
    assert.deepEqual(await rows(message.id as string), []);
  },
);

dbTest("whatsapp-webhook answers 400 to malformed JSON with a good signature", async () => {
  const res = await post('{"object":"whatsapp_business_account","entry":[');
  assert.equal(res.status, 400);
  assert.equal(res.body.code, "VALIDATION_FAILED");
});

dbTest(
  "whatsapp-webhook stores what it can of a payload with wrong types and answers 200",
  async () => {
    // SPEC §6, §13.5: a signed delivery is never refused for its content (Meta would resend the
    // same bytes for days); only what has no usable wamid is skipped.
    const good = textMessage(waId());
    const oddTimestamp: Json = { ...textMessage(waId()), timestamp: { at: 1 }, from: 15551234567 };
    let res = await post(delivery(messagesChange({
      messages: [good, { ...textMessage(waId()), id: 42 }, oddTimestamp, "not a message"],
      statuses: [{ id: wamid(), status: 7 }],
    })));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { received: 2, statuses: 0 });
    const [stored, odd] = await rows(good.id as string, oddTimestamp.id as string);
    assert.equal(stored.text_body, "Does it come in another color?");
    assert.equal(odd.sent_at, null);
    assert.equal(odd.wa_id, null);
    assert.deepEqual(odd.raw.timestamp, { at: 1 });

    res = await post({ object: "whatsapp_business_account", entry: "nope" });
    assert.deepEqual([res.status, res.body], [200, { received: 0, statuses: 0 }]);

    res = await post("[1, 2, 3]");
    assert.deepEqual([res.status, res.body], [200, { received: 0, statuses: 0 }]);
  },
);

dbTest("whatsapp-webhook refuses a 4 MiB body with 413", async () => {
  const big = new Uint8Array(4 * 1024 * 1024).fill(0x20);
  const res = await post(big);
  assert.equal(res.status, 413);
  assert.equal(res.body.code, "PAYLOAD_TOO_LARGE");
});

dbTest(
  "whatsapp-webhook stops reading an oversized body instead of buffering it whole",
  async () => {
    const chunkBytes = 64 * 1024;
    const totalBytes = 4 * 1024 * 1024;
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= totalBytes) return controller.close();
        pulled += chunkBytes;
        controller.enqueue(new Uint8Array(chunkBytes).fill(0x20));
      },
    });
    const res = await handler()(
      new Request("http://127.0.0.1:54321/functions/v1/whatsapp-webhook", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-hub-signature-256": `sha256=${"0".repeat(64)}`,
        },
        body: stream,
      }),
    );
    assert.equal(res.status, 413);
    assert.equal((await res.json()).code, "PAYLOAD_TOO_LARGE");
    assert.ok(pulled < totalBytes, `read ${pulled} bytes`);

    // A declared length over the limit is refused before a byte is read.
    const declared = await call(handler(), "whatsapp-webhook", {
      method: "POST",
      body: "{}",
      headers: { "content-length": String(totalBytes), "x-hub-signature-256": "sha256=00" },
    });
    assert.equal(declared.status, 413);
  },
);

// ---------------------------------------------------------------------------------------------
// Person linking
// ---------------------------------------------------------------------------------------------

dbTest(
  "whatsapp-webhook links a message to the person whose phone matches the sender",
  async () => {
    const known = waId();
    const [person] = await testSql()`
    insert into identity.person (phone, display_name) values (${`+${known}`}, 'Known sender')
    returning id`;
    const stranger = waId();
    const fromKnown = textMessage(known);
    const fromStranger = textMessage(stranger);
    const res = await post(delivery(
      messagesChange({ contacts: [contact(known)], messages: [fromKnown] }),
      messagesChange({ contacts: [contact(stranger)], messages: [fromStranger] }),
    ));
    assert.equal(res.status, 200);
    const [linked, unlinked] = await rows(fromKnown.id as string, fromStranger.id as string);
    assert.equal(linked.person_id, person.id);
    assert.equal(unlinked.person_id, null);

    // An outbound message seen through its status is linked to its recipient the same way.
    const outbound = wamid();
    await post(
      delivery(messagesChange({ statuses: [status(outbound, "sent", known, "1750263773")] })),
    );
    const [sent] = await rows(outbound);
    assert.equal(sent.person_id, person.id);
  },
);

// ---------------------------------------------------------------------------------------------
// Over HTTP, as Meta reaches it
// ---------------------------------------------------------------------------------------------

dbTest("whatsapp-webhook is reached through the local server without a JWT", async () => {
  const server = await startLocalServer({ env: testEnv(whatsappEnv), sql: testSql() });
  try {
    const url = `${server.functionsUrl}/whatsapp-webhook`;
    const check = await fetch(`${url}?${new URLSearchParams(goodVerification)}`);
    assert.equal(check.status, 200);
    assert.equal(await check.text(), goodVerification["hub.challenge"]);

    const message = textMessage(waId());
    const raw = JSON.stringify(delivery(messagesChange({ messages: [message] })));
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-hub-signature-256": `sha256=${await hmacHex(raw)}`,
      },
      body: raw,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { received: 1, statuses: 0 });
    assert.equal((await rows(message.id as string)).length, 1);
  } finally {
    await server.close();
  }
});
