/**
 * No poison deliveries (SPEC §13.5), from the sender's side: correctly signed JSON bodies built to
 * break a parser, a database or a schema (lone surrogates, U+0000, invalid UTF-8, numbers JSON
 * cannot hold, 10,000-character strings, nesting 1000 levels deep, every JSON type in every field
 * the webhooks read) are all answered 2xx, and the valid content next to them is stored.
 */
import assert from "node:assert/strict";
import {
  cutText,
  defaultJsonLimits,
  sanitizeJson,
} from "../supabase/functions/_shared/json_sanitize.ts";
import { createHandler as createSignupHandler } from "../supabase/functions/signup-webhook/handler.ts";
import { createHandler as createWhatsappHandler } from "../supabase/functions/whatsapp-webhook/handler.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { TestClock, testDeps } from "./support/deps.ts";
import { call, type CallResult } from "./support/http.ts";

// ---------------------------------------------------------------------------------------------
// JSON text that JavaScript values cannot express (1e400), built by hand
// ---------------------------------------------------------------------------------------------

/** JSON text placed as it is (a number JSON.stringify cannot produce). */
class RawJson {
  constructor(readonly text: string) {}
}

/** JSON text of `value`, with RawJson pieces inlined. Lone surrogates come out as `\udXXX`. */
function jsonText(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map(jsonText).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const members = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** `{"a":{"a":…"deep"…}}`, `levels` objects deep. */
function deepObject(levels: number): RawJson {
  return new RawJson(`${'{"a":'.repeat(levels)}"deep"${"}".repeat(levels)}`);
}

/** `[[[…]]]`, `levels` arrays deep. */
function deepArray(levels: number): RawJson {
  return new RawJson(`${"[".repeat(levels)}${"]".repeat(levels)}`);
}

/** Every JSON type, and the values that have broken webhooks: put into every field we read. */
const oddValues: [string, unknown][] = [
  ["null", null],
  ["true", true],
  ["false", false],
  ["zero", 0],
  ["a negative number", -1],
  ["a fraction", 1.5],
  ["Number.MAX_SAFE_INTEGER", Number.MAX_SAFE_INTEGER],
  ["1e400", new RawJson("1e400")],
  ["-1e400", new RawJson("-1e400")],
  ["1e-400", new RawJson("1e-400")],
  ["an empty string", ""],
  ["a lone high surrogate", "\ud83d"],
  ["a lone low surrogate", "x\udc00y"],
  ["U+0000", "a\u0000b"],
  ["10,000 characters", "x".repeat(10_000)],
  ["an empty array", []],
  ["an array", [1, "two", null]],
  ["an empty object", {}],
  ["an object", { a: 1 }],
  ["a __proto__ key", new RawJson('{"__proto__":{"polluted":true}}')],
  ["objects 1000 levels deep", deepObject(1000)],
  ["arrays 1000 levels deep", deepArray(1000)],
];

/** A copy of `root` with `value` at `path` (a path ending at a missing key adds it). */
function withValueAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (Array.isArray(root)) {
    return root.map((item, i) => i === head ? withValueAt(item, rest, value) : item);
  }
  const record = root as Record<string, unknown>;
  return { ...record, [head]: withValueAt(record[head], rest, value) };
}

// ---------------------------------------------------------------------------------------------
// WhatsApp: fixtures and signing
// ---------------------------------------------------------------------------------------------

const appSecret = "test-whatsapp-app-secret-poison-01";
const whatsappEnv = {
  WHATSAPP_VERIFY_TOKEN: "verify-token-poison",
  WHATSAPP_APP_SECRET: appSecret,
};
const encoder = new TextEncoder();

function wamid(): string {
  return `wamid.HBgL${crypto.randomUUID().replaceAll("-", "")}`;
}

function waId(): string {
  return `1555${
    String(crypto.getRandomValues(new Uint32Array(1))[0] % 10_000_000).padStart(7, "0")
  }`;
}

async function metaSignature(body: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(appSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, body as Uint8Array<ArrayBuffer>),
  );
  return `sha256=${Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** POSTs `body` (a value, RawJson or bytes) to whatsapp-webhook, signed as Meta signs it. */
async function postWhatsapp(
  handler: ReturnType<typeof createWhatsappHandler>,
  body: unknown,
): Promise<CallResult> {
  const bytes = body instanceof Uint8Array ? body : encoder.encode(jsonText(body));
  return await call(handler, "whatsapp-webhook", {
    method: "POST",
    body: bytes,
    headers: {
      "content-type": "application/json",
      "x-hub-signature-256": await metaSignature(bytes),
    },
  });
}

/** One `messages` change with one text message and one status, as Meta sends them. */
function messagesChange(ids: { message: string; status: string; from: string }) {
  return {
    field: "messages",
    value: {
      messaging_product: "whatsapp",
      metadata: { display_phone_number: "15550783881", phone_number_id: "106540352242922" },
      contacts: [{ profile: { name: "Sheena Nelson" }, wa_id: ids.from }],
      messages: [{
        from: ids.from,
        id: ids.message,
        timestamp: "1749416383",
        type: "text",
        text: { body: "Does it come in another color?" },
      }],
      statuses: [{
        id: ids.status,
        status: "sent",
        timestamp: "1749416390",
        recipient_id: ids.from,
      }],
      errors: [{ code: 131047, title: "Re-engagement message" }],
    },
  };
}

function freshIds() {
  return { message: wamid(), status: wamid(), from: waId() };
}

// deno-lint-ignore no-explicit-any
async function messageRows(...wamids: string[]): Promise<any[]> {
  return [...await testSql()`select * from whatsapp.message where wamid = any(${wamids})`];
}

/** Asserts the untouched change's message and status were stored whole. */
async function assertValidStored(ids: { message: string; status: string; from: string }) {
  const rows = await messageRows(ids.message, ids.status);
  const message = rows.find((r) => r.wamid === ids.message);
  const status = rows.find((r) => r.wamid === ids.status);
  assert.ok(message, "the valid message is stored");
  assert.equal(message.text_body, "Does it come in another color?");
  assert.equal(message.profile_name, "Sheena Nelson");
  assert.equal(message.wa_id, ids.from);
  assert.equal(message.sent_at.toISOString(), new Date(1749416383_000).toISOString());
  assert.ok(status, "the valid status is applied");
  assert.equal(status.status, "sent");
}

/**
 * Every field whatsapp-webhook reads, as a path into a delivery whose `entry[1]` is the poisoned
 * copy of a valid change; `storesPoisoned` says whether the poisoned message keeps a usable wamid
 * (so it must be stored too, with the odd field read as absent).
 */
const whatsappFields: { path: (string | number)[]; storesPoisoned: boolean }[] = [
  ...[
    [],
    ["id"],
    ["changes"],
    ["changes", 0],
    ["changes", 0, "field"],
    ["changes", 0, "value"],
    ["changes", 0, "value", "messages"],
    ["changes", 0, "value", "messages", 0],
    ["changes", 0, "value", "messages", 0, "id"],
  ].map((path) => ({ path, storesPoisoned: false })),
  ...[
    ["changes", 0, "value", "metadata"],
    ["changes", 0, "value", "metadata", "phone_number_id"],
    ["changes", 0, "value", "contacts"],
    ["changes", 0, "value", "contacts", 0],
    ["changes", 0, "value", "contacts", 0, "wa_id"],
    ["changes", 0, "value", "contacts", 0, "profile"],
    ["changes", 0, "value", "contacts", 0, "profile", "name"],
    ["changes", 0, "value", "messages", 0, "from"],
    ["changes", 0, "value", "messages", 0, "timestamp"],
    ["changes", 0, "value", "messages", 0, "type"],
    ["changes", 0, "value", "messages", 0, "errors"],
    ["changes", 0, "value", "messages", 0, "text"],
    ["changes", 0, "value", "messages", 0, "text", "body"],
    ["changes", 0, "value", "messages", 0, "unknown_field"],
    ["changes", 0, "value", "statuses"],
    ["changes", 0, "value", "statuses", 0],
    ["changes", 0, "value", "statuses", 0, "id"],
    ["changes", 0, "value", "statuses", 0, "status"],
    ["changes", 0, "value", "statuses", 0, "timestamp"],
    ["changes", 0, "value", "statuses", 0, "recipient_id"],
    ["changes", 0, "value", "statuses", 0, "errors"],
    ["changes", 0, "value", "errors"],
    ["changes", 0, "value", "errors", 0],
    ["changes", 0, "value", "errors", 0, "code"],
  ].map((path) => ({ path, storesPoisoned: true })),
];

dbTest(
  "whatsapp-webhook answers 200 to every JSON type in every field it reads and stores the valid rest",
  async () => {
    const handler = createWhatsappHandler(testDeps({ env: whatsappEnv }));
    for (const { path, storesPoisoned } of whatsappFields) {
      for (const [label, value] of oddValues) {
        const valid = freshIds();
        const poisoned = freshIds();
        const entry = withValueAt(
          { id: "102290129340398", changes: [messagesChange(poisoned)] },
          path,
          value,
        );
        const res = await postWhatsapp(handler, {
          object: "whatsapp_business_account",
          entry: [{ id: "102290129340398", changes: [messagesChange(valid)] }, entry],
        });
        const at = `entry.1.${path.join(".")} = ${label}`;
        assert.equal(res.status, 200, `${at}: ${JSON.stringify(res.body)}`);
        await assertValidStored(valid);
        if (storesPoisoned) {
          const [row] = await messageRows(poisoned.message);
          assert.ok(row, `${at}: the poisoned message keeps its wamid, so it is stored`);
        }
      }
    }
  },
);

dbTest("whatsapp-webhook answers 200 to every JSON type at the top of a signed body", async () => {
  const handler = createWhatsappHandler(testDeps({ env: whatsappEnv }));
  for (const [label, value] of oddValues) {
    for (
      const body of [value, { object: value, entry: [] }, {
        object: "whatsapp_business_account",
        entry: value,
      }]
    ) {
      const res = await postWhatsapp(handler, body);
      assert.equal(res.status, 200, `${label}: ${jsonText(body).slice(0, 80)}`);
      assert.deepEqual(res.body, { received: 0, statuses: 0 });
    }
  }
});

dbTest("whatsapp-webhook stores a text with lone surrogates and U+0000 as U+FFFD", async () => {
  const handler = createWhatsappHandler(testDeps({ env: whatsappEnv }));
  const ids = freshIds();
  const change = withValueAt(
    withValueAt(
      messagesChange(ids),
      ["value", "messages", 0, "text", "body"],
      "hi \ud83d \u0000 \udc00 😀",
    ),
    ["value", "contacts", 0, "profile", "name"],
    "Sheena \ud83d",
  );
  const res = await postWhatsapp(handler, {
    object: "whatsapp_business_account",
    entry: [{ changes: [change] }],
  });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { received: 1, statuses: 1 });
  const [row] = await messageRows(ids.message);
  assert.equal(row.text_body, "hi \ufffd \ufffd \ufffd 😀");
  assert.equal(row.profile_name, "Sheena \ufffd");
  assert.equal(row.raw.text.body, "hi \ufffd \ufffd \ufffd 😀");
});

dbTest("whatsapp-webhook stores invalid UTF-8 bytes as U+FFFD", async () => {
  const handler = createWhatsappHandler(testDeps({ env: whatsappEnv }));
  const ids = freshIds();
  const text = jsonText({
    object: "whatsapp_business_account",
    entry: [{ changes: [messagesChange(ids)] }],
  });
  const marker = "another color";
  const at = encoder.encode(text.slice(0, text.indexOf(marker))).length;
  const bytes = encoder.encode(text);
  bytes.set([0xff, 0xc3, 0x28], at); // not UTF-8: a stray byte and a broken two-byte sequence
  const res = await postWhatsapp(handler, bytes);
  assert.equal(res.status, 200);
  const [row] = await messageRows(ids.message);
  assert.equal(row.text_body, "Does it come in \ufffd\ufffd(ther color?");
});

dbTest(
  "whatsapp-webhook cuts a 10,000-character text at 4096 characters and keeps the message",
  async () => {
    const handler = createWhatsappHandler(testDeps({ env: whatsappEnv }));
    const ids = freshIds();
    const long = "😀".repeat(5_000); // 10,000 UTF-16 units, 5,000 characters
    const change = withValueAt(messagesChange(ids), ["value", "messages", 0, "text", "body"], long);
    const res = await postWhatsapp(handler, {
      object: "whatsapp_business_account",
      entry: [{ changes: [change] }],
    });
    assert.equal(res.status, 200);
    const [row] = await messageRows(ids.message);
    assert.equal(row.text_body, "😀".repeat(4096));
    const [{ length }] =
      await testSql()`select length(text_body) from whatsapp.message where wamid = ${ids.message}`;
    assert.equal(length, 4096);
  },
);

dbTest(
  "whatsapp-webhook keeps a message whose timestamp is out of range, without a time",
  async () => {
    const handler = createWhatsappHandler(testDeps({ env: whatsappEnv }));
    const cases: unknown[] = [
      Number.MAX_SAFE_INTEGER,
      String(Number.MAX_SAFE_INTEGER),
      new RawJson("1e400"),
      -5,
      1.5,
      "1749416383.5",
      "9".repeat(13),
    ];
    for (const timestamp of cases) {
      const ids = freshIds();
      const change = withValueAt(
        messagesChange(ids),
        ["value", "messages", 0, "timestamp"],
        timestamp,
      );
      const poisonedStatus = withValueAt(change, ["value", "statuses", 0, "timestamp"], timestamp);
      const res = await postWhatsapp(handler, {
        object: "whatsapp_business_account",
        entry: [{ changes: [poisonedStatus] }],
      });
      assert.equal(res.status, 200, jsonText(timestamp));
      const [message] = await messageRows(ids.message);
      assert.equal(message.sent_at, null);
      const [status] = await messageRows(ids.status);
      assert.equal(status.status, "sent");
      assert.ok(status.status_at instanceof Date, "a status without a time is dated on arrival");
    }
    // Numeric unix seconds in range are read like Meta's strings.
    const ids = freshIds();
    const change = withValueAt(
      messagesChange(ids),
      ["value", "messages", 0, "timestamp"],
      1749416383,
    );
    await postWhatsapp(handler, {
      object: "whatsapp_business_account",
      entry: [{ changes: [change] }],
    });
    const [message] = await messageRows(ids.message);
    assert.equal(message.sent_at.toISOString(), new Date(1749416383_000).toISOString());
  },
);

dbTest("whatsapp-webhook stores raw JSON nested 1000 levels deep, cut at 64 levels", async () => {
  const handler = createWhatsappHandler(testDeps({ env: whatsappEnv }));
  const ids = freshIds();
  const change = withValueAt(
    messagesChange(ids),
    ["value", "messages", 0, "interactive"],
    deepObject(1000),
  );
  const res = await postWhatsapp(handler, {
    object: "whatsapp_business_account",
    entry: [{ changes: [change] }],
  });
  assert.equal(res.status, 200);
  const [row] = await messageRows(ids.message);
  let depth = 0;
  // `interactive` sits 8 levels below the root (entry, 0, changes, 0, value, messages, 0, it).
  for (let node = row.raw.interactive; node !== null; node = node.a) depth++;
  assert.equal(depth, defaultJsonLimits.maxDepth - 8);
  assert.equal(row.text_body, "Does it come in another color?");
});

dbTest("whatsapp-webhook answers 200 to a 3 MiB body nested a million levels deep", async () => {
  const handler = createWhatsappHandler(testDeps({ env: whatsappEnv }));
  const levels = 1_000_000;
  for (const body of [deepArray(levels), deepObject(levels / 5)]) {
    const res = await postWhatsapp(handler, body);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { received: 0, statuses: 0 });
  }
  const ids = freshIds();
  const change = withValueAt(
    messagesChange(ids),
    ["value", "messages", 0, "deep"],
    deepArray(levels),
  );
  const res = await postWhatsapp(handler, {
    object: "whatsapp_business_account",
    entry: [{ changes: [change] }],
  });
  assert.equal(res.status, 200);
  assert.equal((await messageRows(ids.message)).length, 1);
});

dbTest(
  "whatsapp-webhook logs counts of what it cleaned and skipped, never the content",
  async () => {
    const deps = testDeps({ env: whatsappEnv });
    const handler = createWhatsappHandler(deps);
    const ids = freshIds();
    const change = withValueAt(
      messagesChange(ids),
      ["value", "messages", 0, "text", "body"],
      "secret \ud83d",
    );
    const skippedMessage = withValueAt(
      messagesChange(freshIds()),
      ["value", "messages", 0, "id"],
      42,
    );
    const res = await postWhatsapp(handler, {
      object: "whatsapp_business_account",
      entry: [{ changes: [change, skippedMessage] }],
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { received: 1, statuses: 2 });
    const sanitized = deps.logs.find((line) => line.event === "whatsapp_delivery_sanitized");
    assert.equal(sanitized?.replaced_characters, 1);
    const skipped = deps.logs.find((line) => line.event === "whatsapp_delivery_items_skipped");
    assert.equal(skipped?.messages, 1);
    assert.ok(!JSON.stringify(deps.logs).includes("secret"));
  },
);

// ---------------------------------------------------------------------------------------------
// signup-webhook
// ---------------------------------------------------------------------------------------------

const signupToken = `test-signup-webhook-token-${crypto.randomUUID()}`;

function signupSetup(env: Record<string, string> = {}) {
  const deps = testDeps({
    env: { SIGNUP_WEBHOOK_TOKEN: signupToken, ...env },
    clock: new TestClock(),
  });
  return { deps, handler: createSignupHandler(deps) };
}

async function postSignup(
  handler: ReturnType<typeof createSignupHandler>,
  body: unknown,
): Promise<CallResult> {
  return await call(handler, "signup-webhook", { body: jsonText(body), token: signupToken });
}

async function insertAuthUser(): Promise<
  { id: string; email: string; row: Record<string, unknown> }
> {
  const email = uniqueEmail("poison");
  const [row] = await testSql()`
    insert into auth.users (aud, role, email, raw_app_meta_data, raw_user_meta_data)
    values ('authenticated', 'authenticated', ${email},
      ${testSql().json({ provider: "email", providers: ["email"] })}, ${testSql().json({})})
    returning to_jsonb(users.*) as row`;
  return { id: row.row.id, email, row: row.row };
}

async function personExists(id: string): Promise<boolean> {
  const [row] = await testSql()`select 1 from identity.person where id = ${id}`;
  return row !== undefined;
}

function hookPayload(name: string, user: { id: string; email: string }) {
  return {
    metadata: {
      uuid: crypto.randomUUID(),
      time: new Date().toISOString(),
      name,
      ip_address: "127.0.0.1",
    },
    user: {
      id: user.id,
      aud: "authenticated",
      role: "authenticated",
      email: user.email,
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: {},
      identities: [],
      is_anonymous: false,
    },
  };
}

/**
 * Every field signup-webhook reads, for each event it acts on; `provisions` says whether the user
 * id survives the poison (so the user must still be provisioned).
 */
const signupFields: {
  event: "after-user-created" | "INSERT";
  path: string[];
  provisions: boolean;
}[] = [
  { event: "after-user-created", path: [], provisions: false },
  { event: "after-user-created", path: ["metadata"], provisions: false },
  { event: "after-user-created", path: ["metadata", "name"], provisions: false },
  { event: "after-user-created", path: ["user"], provisions: false },
  { event: "after-user-created", path: ["user", "id"], provisions: false },
  { event: "after-user-created", path: ["user", "email"], provisions: true },
  { event: "after-user-created", path: ["user", "user_metadata"], provisions: true },
  { event: "after-user-created", path: ["unknown_field"], provisions: true },
  { event: "INSERT", path: ["type"], provisions: false },
  { event: "INSERT", path: ["table"], provisions: false },
  { event: "INSERT", path: ["schema"], provisions: false },
  { event: "INSERT", path: ["record"], provisions: false },
  { event: "INSERT", path: ["record", "id"], provisions: false },
  { event: "INSERT", path: ["record", "email"], provisions: true },
  { event: "INSERT", path: ["record", "email_confirmed_at"], provisions: true },
  { event: "INSERT", path: ["record", "raw_user_meta_data"], provisions: true },
  { event: "INSERT", path: ["old_record"], provisions: true },
];

dbTest(
  "signup-webhook answers 200 to every JSON type in every field it reads and provisions what it can",
  async () => {
    const { handler } = signupSetup();
    for (const { event, path, provisions } of signupFields) {
      for (const [label, value] of oddValues) {
        const user = await insertAuthUser();
        const payload = event === "INSERT"
          ? { type: "INSERT", table: "users", schema: "auth", record: user.row, old_record: null }
          : hookPayload("after-user-created", user);
        const res = await postSignup(handler, withValueAt(payload, path, value));
        const at = `${event} ${path.join(".") || "(body)"} = ${label}`;
        assert.equal(res.status, 200, `${at}: ${JSON.stringify(res.body)}`);
        if (provisions) {
          assert.equal(res.body.person_id, user.id, at);
          assert.ok(await personExists(user.id), at);
        }
      }
    }
  },
);

dbTest("signup-webhook answers 200 to every JSON type in an UPDATE's fields", async () => {
  const { handler } = signupSetup();
  const paths = [["record"], ["record", "id"], ["record", "email_confirmed_at"], ["old_record"], [
    "old_record",
    "email_confirmed_at",
  ]];
  for (const path of paths) {
    for (const [label, value] of oddValues) {
      const user = await insertAuthUser();
      const payload = {
        type: "UPDATE",
        table: "users",
        schema: "auth",
        record: { ...user.row, email_confirmed_at: new Date().toISOString() },
        old_record: user.row,
      };
      const res = await postSignup(handler, withValueAt(payload, path, value));
      assert.equal(res.status, 200, `${path.join(".")} = ${label}: ${JSON.stringify(res.body)}`);
    }
  }
});

dbTest(
  "signup-webhook refuses an unreadable before-user-created email in invite mode, with 200",
  async () => {
    const { handler } = signupSetup({ SIGNUP_MODE: "invite" });
    const invited = uniqueEmail("invited");
    await testSql()`insert into identity.invitation (email) values (${invited})`;
    const refusal = { error: { http_code: 403, message: "Signups are by invitation only" } };
    for (const [label, value] of oddValues) {
      const payload = hookPayload("before-user-created", {
        id: crypto.randomUUID(),
        email: invited,
      });
      for (const path of [["user", "email"], ["user"], ["metadata", "name"], ["user", "id"]]) {
        const res = await postSignup(handler, withValueAt(payload, path, value));
        assert.equal(res.status, 200, `${path.join(".")} = ${label}`);
        if (path[1] !== "id" && path[1] !== "name") assert.deepEqual(res.body, refusal, label);
      }
      // Poison elsewhere does not stop an invited email.
      const res = await postSignup(handler, withValueAt(payload, ["user", "user_metadata"], value));
      assert.deepEqual([res.status, res.body], [200, {}], label);
    }
    // An email with U+0000 or a lone surrogate is no invited email (and no 500).
    for (const email of [`${invited}\u0000`, `${invited}\ud83d`]) {
      const payload = hookPayload("before-user-created", { id: crypto.randomUUID(), email });
      const res = await postSignup(handler, payload);
      assert.deepEqual([res.status, res.body], [200, refusal], JSON.stringify(email));
    }
  },
);

dbTest("signup-webhook answers 200 to a 64 KiB body nested 30,000 levels deep", async () => {
  const { handler } = signupSetup();
  for (const body of [deepArray(30_000), deepObject(6_000)]) {
    const res = await postSignup(handler, body);
    assert.deepEqual([res.status, res.body], [200, { ignored: true }]);
  }
});

dbTest("signup-webhook still answers 400 to a signed body that is not JSON", async () => {
  const { handler } = signupSetup();
  for (const text of ["{not json", "", '{"metadata":', "1e400x"]) {
    const res = await postSignup(handler, new RawJson(text));
    assert.equal(res.status, 400, text);
    assert.equal(res.body.code, "VALIDATION_FAILED");
  }
});

// ---------------------------------------------------------------------------------------------
// sanitizeJson() itself
// ---------------------------------------------------------------------------------------------

Deno.test("sanitizeJson() makes strings and keys well-formed and drops numbers JSON cannot hold", () => {
  const { value, fixes } = sanitizeJson(
    JSON.parse('{"a\\ud83d":"b\\udc00","n":1e400,"list":[1,-1e400,"\\u0000"],"ok":"😀"}'),
  );
  assert.deepEqual(value, { "a\ufffd": "b\ufffd", list: [1, null, "\ufffd"], ok: "😀" });
  assert.deepEqual(fixes, {
    replaced_characters: 3,
    cut_strings: 0,
    dropped_numbers: 2,
    cut_nesting: 0,
  });
});

Deno.test("sanitizeJson() cuts strings and keys at their limits, never inside a pair", () => {
  const limits = { maxStringLength: 3, maxKeyLength: 2, maxDepth: 64 };
  const { value, fixes } = sanitizeJson({ abc: "ab😀cd", x: "abc" }, limits);
  assert.deepEqual(value, { ab: "ab😀", x: "abc" });
  assert.equal(fixes.cut_strings, 2);
  assert.equal(cutText("a😀b", 2), "a😀");
  assert.equal(cutText("a\ud83d", 1), "a");
});

Deno.test("sanitizeJson() keeps a __proto__ key as a key, never as a prototype", () => {
  const { value } = sanitizeJson(JSON.parse('{"__proto__":{"polluted":true}}'));
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.deepEqual(Object.keys(value as object), ["__proto__"]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("sanitizeJson() replaces what lies below maxDepth with null, without recursing into it", () => {
  const deep = JSON.parse(`${"[".repeat(200_000)}${"]".repeat(200_000)}`);
  const { value, fixes } = sanitizeJson(deep, { ...defaultJsonLimits, maxDepth: 2 });
  assert.deepEqual(value, [[null]]);
  assert.equal(fixes.cut_nesting, 1);
});
