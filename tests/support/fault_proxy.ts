/**
 * A TCP proxy that sits between the functions and Postgres in fault tests (SPEC §13.6) and breaks
 * the link on command: refuse connections, swallow traffic, or slow it down. Test tooling only.
 *
 * @example
 * const proxy = await startFaultProxy("postgres://postgres@127.0.0.1:5432/postgres");
 * try {
 *   proxy.set("blackhole");
 *   // point the code under test at proxy.url and watch it time out
 * } finally {
 *   await proxy.close();
 * }
 */

/**
 * - `pass`: forward both ways.
 * - `refuse`: stop listening, so new connections are refused (ECONNREFUSED), and close existing
 *   ones.
 * - `blackhole`: accept, forward nothing either way; existing connections hang.
 * - `slow`: forward, waiting `delayMs` before passing on each chunk read, in each direction (a
 *   chunk is whatever one read returns, up to 16 KiB).
 */
export type FaultMode = "pass" | "refuse" | "blackhole" | "slow";

export interface FaultProxy {
  /** 127.0.0.1 port to connect to instead of the upstream. */
  port: number;
  /** URL of `upstreamUrl` rewritten to go through the proxy. */
  url: string;
  /**
   * Changes behaviour for new AND existing connections: refuse = close new connections at once and
   * reset existing ones; blackhole = accept but forward nothing either way (existing connections
   * hang); slow = forward with `delayMs` (default 200) added per chunk; pass = normal.
   *
   * Refuse closes the listening socket, so the kernel refuses new connections; leaving refuse
   * listens again on the same port (and throws if something else took it meanwhile). Accepting and
   * then closing would not do: postgres.js takes a connection closed during its handshake for a
   * hiccup and reconnects at once, in a loop, instead of failing the query.
   *
   * Blackhole stops reading rather than discarding: bytes wait in the socket buffers (or, for a
   * chunk already read, in the proxy) and flow on in order when the mode leaves blackhole, so
   * nothing is dropped, though the peers may have given up by then.
   */
  set(mode: FaultMode, options?: { delayMs?: number }): void;
  /** Stops listening, closes every connection both sides, and resolves once nothing is pending. */
  close(): Promise<void>;
}

/** The pause of `slow` when `set` is not given `delayMs`. */
const defaultDelayMs = 200;
const chunkBytes = 16 * 1024;

/** One client connection and the upstream connection opened for it. */
interface Link {
  client: Deno.Conn;
  upstream?: Deno.Conn;
  closed: boolean;
}

/**
 * Starts a proxy on a free 127.0.0.1 port that forwards to the host and port of `upstreamUrl`
 * (port 5432 when a `postgres:` or `postgresql:` URL names none), in `pass` mode.
 *
 * Limits: refuse ends existing connections with an ordinary close (Deno cannot send a TCP RST on
 * demand), so their peers see the connection end rather than ECONNRESET; and under blackhole the
 * TCP connect itself succeeds (the kernel accepts it), so a client times out in its startup
 * handshake rather than in connect.
 */
// Async although nothing is awaited: a bad URL or a failed listen then rejects rather than throws.
// deno-lint-ignore require-await
export async function startFaultProxy(upstreamUrl: string): Promise<FaultProxy> {
  const upstream = upstreamAddress(upstreamUrl);
  const firstListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = firstListener.addr.port;
  let listener: Deno.Listener | undefined = firstListener;
  const url = new URL(upstreamUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);

  let mode: FaultMode = "pass";
  let delayMs = defaultDelayMs;
  let closing: Promise<void> | undefined;
  const links = new Set<Link>();
  const tasks = new Set<Promise<void>>();
  const stopped = new AbortController();
  // Resolved and replaced on every change of mode, so that held pumps look again.
  let modeChanged = Promise.withResolvers<void>();

  function closeLink(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    links.delete(link);
    closeQuietly(link.client);
    if (link.upstream) closeQuietly(link.upstream);
  }

  async function holdWhileBlackholed(): Promise<void> {
    while (mode === "blackhole" && !closing) await modeChanged.promise;
  }

  async function pump(from: Deno.Conn, to: Deno.Conn, link: Link): Promise<void> {
    const buffer = new Uint8Array(chunkBytes);
    try {
      while (true) {
        await holdWhileBlackholed(); // not reading leaves the bytes queued in the socket
        if (link.closed) return;
        const read = await from.read(buffer);
        if (read === null) return;
        await holdWhileBlackholed(); // a chunk read just before the switch waits here
        if (mode === "slow") await sleep(delayMs, stopped.signal);
        if (link.closed) return;
        for (let written = 0; written < read;) {
          written += await to.write(buffer.subarray(written, read));
        }
      }
    } catch {
      // A socket was closed under us: by refuse, close() or the other pump. Nothing to report.
    } finally {
      closeLink(link);
    }
  }

  async function serve(client: Deno.Conn): Promise<void> {
    const link: Link = { client, closed: false };
    links.add(link);
    let upstreamConn: Deno.Conn;
    try {
      upstreamConn = await Deno.connect(upstream);
    } catch {
      closeLink(link);
      return;
    }
    if (link.closed) {
      // Refused or closed while connecting.
      closeQuietly(upstreamConn);
      return;
    }
    link.upstream = upstreamConn;
    await Promise.all([pump(client, upstreamConn, link), pump(upstreamConn, client, link)]);
  }

  function track(task: Promise<void>): void {
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  }

  async function acceptConnections(from: Deno.Listener): Promise<void> {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await from.accept();
      } catch {
        return; // the listener was closed: by refuse or close()
      }
      if (closing || mode === "refuse") closeQuietly(conn);
      else track(serve(conn));
    }
  }
  track(acceptConnections(listener));

  return {
    port,
    url: url.href,
    set(next, options = {}) {
      const nextDelayMs = options.delayMs ?? defaultDelayMs;
      if (!Number.isFinite(nextDelayMs) || nextDelayMs < 0) {
        throw new RangeError(
          `Cannot set the fault proxy: delayMs must be >= 0, got ${nextDelayMs}`,
        );
      }
      if (closing) return;
      if (next === "refuse" && listener) {
        closeQuietly(listener);
        listener = undefined;
      } else if (next !== "refuse" && !listener) {
        listener = Deno.listen({ hostname: "127.0.0.1", port }); // throws if the port was taken
        track(acceptConnections(listener));
      }
      mode = next;
      delayMs = nextDelayMs;
      if (mode === "refuse") {
        for (const link of [...links]) closeLink(link);
      }
      const changed = modeChanged;
      modeChanged = Promise.withResolvers<void>();
      changed.resolve();
    },
    close() {
      closing ??= (async () => {
        if (listener) closeQuietly(listener);
        listener = undefined;
        stopped.abort();
        modeChanged.resolve();
        for (const link of [...links]) closeLink(link);
        while (tasks.size) await Promise.all(tasks);
      })();
      return closing;
    },
  };
}

function upstreamAddress(upstreamUrl: string): { hostname: string; port: number } {
  const url = new URL(upstreamUrl);
  const postgresScheme = url.protocol === "postgres:" || url.protocol === "postgresql:";
  const port = url.port ? Number(url.port) : postgresScheme ? 5432 : NaN;
  if (!url.hostname || !Number.isInteger(port)) {
    throw new TypeError("Cannot start the fault proxy: the upstream URL names no host and port");
  }
  // An IPv6 host comes bracketed out of URL; Deno.connect wants it bare.
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return { hostname, port };
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}

/** Waits `ms`, or less when `signal` aborts; leaves no timer behind either way. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
