/**
 * The fault proxy against a real Postgres: TEST_DATABASE_URL when the suite runs through
 * `npm test`, else the local server at 127.0.0.1:5432. Skipped on embedded PGlite, which serves
 * one connection at a time and would be held by a blackholed one.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { type FaultProxy, startFaultProxy } from "./support/fault_proxy.ts";

const upstreamUrl = Deno.env.get("TEST_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const onPglite = Deno.env.get("TEST_DATABASE_KIND") === "pglite";

type Sql = ReturnType<typeof postgres>;

/** How long a query may go unanswered before a test calls it hung. */
const hangTimeoutMs = 1000;

/**
 * A test with a fresh proxy and a postgres.js client on it, both closed afterwards, with Deno's op
 * and resource sanitizers on: nothing either of them opened may outlive the test.
 */
function proxyTest(name: string, fn: (proxy: FaultProxy, sql: Sql) => Promise<void>): void {
  Deno.test({
    name,
    ignore: onPglite,
    async fn() {
      const proxy = await startFaultProxy(upstreamUrl);
      const sql = connect(proxy.url);
      try {
        await fn(proxy, sql);
      } finally {
        await sql.end({ timeout: 0 });
        await proxy.close();
      }
    },
  });
}

function connect(url: string): Sql {
  return postgres(url, {
    max: 1,
    connect_timeout: 2,
    idle_timeout: 1,
    prepare: false,
    onnotice: () => {},
  });
}

const timedOut = Symbol("timed out");

/** `promise`'s value, or `timedOut` after `ms` (a later failure of `promise` is ignored). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof timedOut> {
  promise.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<typeof timedOut>((resolve) => {
    timer = setTimeout(() => resolve(timedOut), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function selectOne(sql: Sql): Promise<number> {
  const [row] = await sql`select 1 as one`;
  return row.one;
}

proxyTest("fault proxy forwards queries in pass mode", async (proxy, sql) => {
  const url = new URL(proxy.url);
  const upstream = new URL(upstreamUrl);
  assert.equal(url.hostname, "127.0.0.1");
  assert.equal(url.port, String(proxy.port));
  assert.equal(url.pathname, upstream.pathname);
  assert.equal(url.username, upstream.username);
  assert.equal(await selectOne(sql), 1);
});

proxyTest(
  "fault proxy in refuse mode fails a new connection at once, until pass",
  async (proxy, sql) => {
    proxy.set("refuse");
    const started = performance.now();
    await assert.rejects(selectOne(sql), { code: "ECONNREFUSED" });
    assert.ok(performance.now() - started < 1000, "the query should fail well before any timeout");

    proxy.set("pass"); // listens again, on the same port
    assert.equal(await selectOne(sql), 1);
  },
);

proxyTest("fault proxy in refuse mode ends connections already open", async (proxy, sql) => {
  assert.equal(await selectOne(sql), 1);
  const inFlight = sql`select pg_sleep(0.5)`;
  inFlight.catch(() => {});
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    const ended = raw.read(new Uint8Array(64)).catch(() => null);
    proxy.set("refuse");
    assert.equal(await within(ended, hangTimeoutMs), null, "the open connection should end");
    await assert.rejects(inFlight, { code: "CONNECTION_CLOSED" });
    await assert.rejects(selectOne(sql), { code: "ECONNREFUSED" });
  } finally {
    raw.close();
  }
});

proxyTest(
  "fault proxy in blackhole mode leaves a new connection unanswered",
  async (proxy, sql) => {
    proxy.set("blackhole");
    assert.equal(await within(selectOne(sql), hangTimeoutMs), timedOut);
    await sql.end({ timeout: 0 });

    proxy.set("pass");
    const fresh = connect(proxy.url);
    try {
      assert.equal(await selectOne(fresh), 1);
    } finally {
      await fresh.end({ timeout: 0 });
    }
  },
);

proxyTest(
  "fault proxy in blackhole mode hangs an open connection, which resumes on pass",
  async (proxy, sql) => {
    assert.equal(await selectOne(sql), 1);
    proxy.set("blackhole");
    const query = sql`select 2 as two`;
    assert.equal(await within(query, hangTimeoutMs), timedOut);

    proxy.set("pass");
    const [row] = await query; // held, not dropped
    assert.equal(row.two, 2);
  },
);

proxyTest("fault proxy in slow mode delays each chunk", async (proxy, sql) => {
  const delayMs = 300;
  assert.equal(await selectOne(sql), 1); // connected before the delay starts
  proxy.set("slow", { delayMs });
  let started = performance.now();
  assert.equal(await selectOne(sql), 1);
  // The query is one chunk out and the answer at least one chunk back, each delayed.
  assert.ok(performance.now() - started >= 2 * delayMs, "both directions should be delayed");

  proxy.set("pass");
  started = performance.now();
  assert.equal(await selectOne(sql), 1);
  assert.ok(performance.now() - started < delayMs, "pass should no longer delay");
});

Deno.test({
  name: "fault proxy close() ends open, blackholed and delayed connections and leaves nothing open",
  ignore: onPglite,
  async fn() {
    const proxy = await startFaultProxy(upstreamUrl);
    const clients: Deno.Conn[] = [];
    try {
      const open = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
      clients.push(open);
      proxy.set("slow", { delayMs: 60_000 });
      const delayed = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
      clients.push(delayed);
      await delayed.write(new Uint8Array(8)); // read by the proxy, then held for a minute
      proxy.set("blackhole");
      const blackholed = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
      clients.push(blackholed);
      await blackholed.write(new Uint8Array(8));

      const started = performance.now();
      await proxy.close();
      assert.ok(performance.now() - started < 1000, "close() should not wait for the delay");
      for (const client of clients) {
        const read = await within(client.read(new Uint8Array(64)).catch(() => null), 1000);
        assert.equal(read, null, "every client connection should end");
      }
      await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: proxy.port }));
    } finally {
      for (const client of clients) client.close();
      await proxy.close();
    }
  },
});
