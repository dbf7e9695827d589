import assert from "node:assert/strict";
import { callFunction } from "../supabase/functions/_shared/db.ts";
import { dbTest, testSql } from "./support/db.ts";

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

dbTest("callFunction passes any string through unchanged and unexecuted", async () => {
  for (const text of awkward) {
    // concat(text) returns its argument: a round trip that shows exactly what arrived.
    const arrived = await callFunction<string>(testSql(), "pg_catalog.concat", text);
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
      t text, n bigint, f double precision, b boolean, nothing uuid, at timestamptz, doc jsonb
    ) returns jsonb language sql as $$
      select jsonb_build_object('t', t, 'n', n, 'f', f, 'b', b, 'nothing', nothing,
        'at', extract(epoch from at) * 1000, 'doc', doc)
    $$`);
  const at = new Date("2026-11-22T12:34:56.789Z");
  const doc = { a: [1, "x'$$"], b: null };
  assert.deepEqual(
    await callFunction(testSql(), "call_test.echo", "it's", -7, 1.5, true, null, at, doc),
    { t: "it's", n: -7, f: 1.5, b: true, nothing: null, at: at.getTime(), doc },
  );
});

Deno.test("callFunction refuses what it cannot pass safely", async () => {
  const sql = null as never;
  await assert.rejects(callFunction(sql, "identity.me; drop", 1), TypeError);
  await assert.rejects(callFunction(sql, "pg_catalog.concat", "nul\0byte"), TypeError);
  await assert.rejects(callFunction(sql, "pg_catalog.concat", Number.NaN), TypeError);
});

dbTest("callFunction turns U+0000 in JSON into U+FFFD, which jsonb can store", async () => {
  await testSql().unsafe(`
    create schema if not exists call_test;
    create or replace function call_test.echo_doc(doc jsonb) returns jsonb
    language sql as $$ select doc $$`);
  const doc = { text: "a\0b", literal: "a\\u0000b", both: "\\\0" };
  assert.deepEqual(await callFunction(testSql(), "call_test.echo_doc", doc), {
    text: "a\ufffdb",
    literal: "a\\u0000b",
    both: "\\\ufffd",
  });
});
