import assert from "node:assert/strict";
import { callFunction, lazyDatabase } from "../supabase/functions/_shared/db.ts";
import { dbTest, testDatabaseUrl, testSql } from "./support/db.ts";

const awkward = [
  "",
  "plain",
  "it's",
  "back\\slash",
  "$$",
  "$a$",
  "$a1x2$ and $a",
  "$arg$",
  "ends with $arg",
  "$arg$); drop table identity.person; --",
  "'); drop table identity.person; --",
  "$$); drop table identity.person; --",
  "unicode ✓ 名前 🙂",
  "line\nbreak\ttab",
  "E'\\x00'",
];

/** call_test.echo_text(p_text) returns its argument: a round trip that shows what arrived. */
async function createEchoText(): Promise<void> {
  await testSql().unsafe(`
    create schema if not exists call_test;
    create or replace function call_test.echo_text(p_text text) returns text
    language sql as $$ select p_text $$`);
}

dbTest("callFunction passes any string through unchanged and unexecuted", async () => {
  await createEchoText();
  for (const text of awkward) {
    const arrived = await callFunction<string>(testSql(), "call_test.echo_text", { p_text: text });
    assert.equal(arrived, text);
  }
  const [{ n }] =
    await testSql()`select count(*)::int as n from pg_tables where tablename = 'person'`;
  assert.equal(n, 1);
});

dbTest("callFunction passes numbers, booleans, null, dates and JSON with their types", async () => {
  await testSql().unsafe(`
    create schema if not exists call_test;
    create or replace function call_test.echo(
      p_t text, p_n bigint, p_f double precision, p_b boolean, p_nothing uuid, p_at timestamptz,
      p_doc jsonb
    ) returns jsonb language sql as $$
      select jsonb_build_object('t', p_t, 'n', p_n, 'f', p_f, 'b', p_b, 'nothing', p_nothing,
        'at', extract(epoch from p_at) * 1000, 'doc', p_doc)
    $$`);
  const at = new Date("2026-11-22T12:34:56.789Z");
  const doc = { a: [1, "x'$$"], b: null };
  assert.deepEqual(
    await callFunction(testSql(), "call_test.echo", {
      p_t: "it's",
      p_n: -7,
      p_f: 1.5,
      p_b: true,
      p_nothing: null,
      p_at: at,
      p_doc: doc,
    }),
    { t: "it's", n: -7, f: 1.5, b: true, nothing: null, at: at.getTime(), doc },
  );
});

Deno.test("callFunction refuses what it cannot pass safely", async () => {
  const sql = null as never;
  await assert.rejects(callFunction(sql, "identity.me; drop", { p_n: 1 }), TypeError);
  await assert.rejects(
    callFunction(sql, "call_test.echo_text", { p_text: "nul\0byte" }),
    TypeError,
  );
  await assert.rejects(callFunction(sql, "call_test.echo_text", { p_n: Number.NaN }), TypeError);
  await assert.rejects(callFunction(sql, "call_test.echo_text", { "p_x => 1, y": 1 }), TypeError);
});

dbTest("callFunction turns U+0000 in JSON into U+FFFD, which jsonb can store", async () => {
  await testSql().unsafe(`
    create schema if not exists call_test;
    create or replace function call_test.echo_doc(p_doc jsonb) returns jsonb
    language sql as $$ select p_doc $$`);
  const doc = { text: "a\0b", literal: "a\\u0000b", both: "\\\0" };
  assert.deepEqual(await callFunction(testSql(), "call_test.echo_doc", { p_doc: doc }), {
    text: "a\ufffdb",
    literal: "a\\u0000b",
    both: "\\\ufffd",
  });
});

dbTest("callFunction passes arguments by name, so swapped ones cannot pass silently", async () => {
  await testSql().unsafe(`
    create schema if not exists call_test;
    create or replace function call_test.pair(p_first text, p_second text) returns text
    language sql as $$ select p_first || '/' || p_second $$`);
  const pair = (args: Record<string, string>) => callFunction(testSql(), "call_test.pair", args);
  assert.equal(await pair({ p_second: "b", p_first: "a" }), "a/b");
  await assert.rejects(pair({ p_first: "a", p_other: "b" }), /does not exist/);
});

dbTest("lazyDatabase opens its pool on the first query, then answers like the pool", async () => {
  await createEchoText();
  const database = lazyDatabase(testDatabaseUrl);
  try {
    const [first, second] = await Promise.all([
      callFunction(database, "call_test.echo_text", { p_text: "first" }),
      callFunction(database, "call_test.echo_text", { p_text: "second" }),
    ]);
    assert.deepEqual([first, second], ["first", "second"]);
    assert.equal(await callFunction(database, "call_test.echo_text", { p_text: "x" }), "x");
  } finally {
    await database.end({ timeout: 1 });
  }
});

Deno.test("a lazy database nobody answers is 503 DATABASE_UNAVAILABLE", async () => {
  const database = lazyDatabase("postgres://postgres@127.0.0.1:1/nothing");
  try {
    await assert.rejects(
      callFunction(database, "call_test.echo_text", { p_text: "x" }),
      (error: unknown) => (error as { code?: string }).code === "DATABASE_UNAVAILABLE",
    );
  } finally {
    await database.end({ timeout: 0 });
  }
});
