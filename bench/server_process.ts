/**
 * The local server in a process of its own, for the load and leak benches: its latencies are not
 * those of a client sharing its event loop, and its memory is its own. The bench talks to it over
 * stdin/stdout, one JSON line each way: the child prints its URLs once listening, answers `rss`
 * with its resident set size (and `gc` with its JS heap after a full collection, when started with
 * `exposeGc`), and exits when stdin closes (so it never outlives the bench).
 *
 * With `--baseline`, the child also serves a baseline on another port: a JWT verify and
 * `select 1` on the same pool, what `me` cannot avoid (as in me.ts).
 */
import { startLocalServer } from "../local/server.ts";
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import { connectDatabase } from "../supabase/functions/_shared/pool.ts";
import { createSessionTokens } from "../supabase/functions/_shared/tokens.ts";

export interface ServerProcess {
  functionsUrl: string;
  /** The baseline server's URL, when asked for. */
  baselineUrl?: string;
  pid: number;
  /** The child's resident set size, in bytes. */
  rss(): Promise<number>;
  /**
   * The child's JS heap in use after a full collection (bytes): what it retains, garbage aside.
   * Needs `exposeGc`; the collection itself may change what RSS reads next.
   */
  retainedHeap(): Promise<number>;
  close(): Promise<void>;
}

interface Ready {
  functionsUrl: string;
  baselineUrl?: string;
}

const encoder = new TextEncoder();

/** Starts the child with `env` as the functions' environment; resolves once it listens. */
export async function startServerProcess(
  env: Record<string, string>,
  options: { baseline?: boolean; exposeGc?: boolean } = {},
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      // As `npm run dev` runs the local server: a bounded young generation (see deno.json).
      `--v8-flags=${["--max-semi-space-size=4", ...(options.exposeGc ? ["--expose-gc"] : [])]}`,
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      new URL(import.meta.url).pathname,
      ...(options.baseline ? ["--baseline"] : []),
    ],
    env: { ...env, DENO_NO_PACKAGE_JSON: "1", LOG_LEVEL: env.LOG_LEVEL ?? "warn" },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = readLines(child.stdout);
  const stdin = child.stdin.getWriter();
  const next = async <T>(): Promise<T> => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`the server process exited (${(await child.status).code})`);
    return JSON.parse(value) as T;
  };
  const ready = await next<Ready>();
  return {
    ...ready,
    pid: child.pid,
    async rss() {
      await stdin.write(encoder.encode("rss\n"));
      return (await next<{ rss: number }>()).rss;
    },
    async retainedHeap() {
      if (!options.exposeGc) throw new Error("start the server process with exposeGc");
      await stdin.write(encoder.encode("gc\n"));
      return (await next<{ heapUsed: number }>()).heapUsed;
    },
    async close() {
      await stdin.close();
      const status = await child.status;
      if (!status.success) throw new Error(`the server process exited with ${status.code}`);
    },
  };
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  const decoder = new TextDecoder();
  for await (const bytes of stream) {
    buffered += decoder.decode(bytes, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
}

/** The child: the local server (and the baseline) until stdin closes. */
async function serve(): Promise<void> {
  const env = Deno.env.toObject();
  const sql = connectDatabase(env.SUPABASE_DB_URL, { max: 10 });
  const server = await startLocalServer({ env, sql });
  let baseline: Deno.HttpServer<Deno.NetAddr> | undefined;
  if (Deno.args.includes("--baseline")) {
    const config = loadConfig(env);
    if (!config.core.ok) throw new Error(config.core.message);
    const tokens = createSessionTokens(config.core.value);
    baseline = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const token = req.headers.get("authorization")?.slice(7) ?? "";
        if (!(await tokens.access.verify(token, new Date())).ok) {
          return new Response(null, { status: 401 });
        }
        await sql`select 1`;
        return Response.json({ ok: true });
      },
    );
  }
  const say = (value: unknown) => Deno.stdout.write(encoder.encode(`${JSON.stringify(value)}\n`));
  await say({
    functionsUrl: server.functionsUrl,
    baselineUrl: baseline ? `http://127.0.0.1:${baseline.addr.port}/` : undefined,
  });
  for await (const line of readLines(Deno.stdin.readable)) {
    if (line === "rss") await say({ rss: Deno.memoryUsage().rss });
    if (line === "gc") {
      (globalThis as { gc?: () => void }).gc?.();
      await say({ heapUsed: Deno.memoryUsage().heapUsed });
    }
  }
  await baseline?.shutdown();
  await server.close();
  await sql.end();
}

if (import.meta.main) await serve();
