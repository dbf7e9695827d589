/**
 * Cold start: process start → first answer of each function's index.ts (as `deno run` starts it,
 * the way the Edge Runtime boots a worker), against a bare `Deno.serve` file in the same run, and
 * process start → first successful answer of a real request for `me` (token verify + SQL) and
 * otp-send (through the Stytch emulator). Each is started `runs` times in alternation with the bare
 * file, after one start that is not counted (Deno's module cache is then warm for every entry
 * alike); its ratio is of the two medians.
 */
import type { BenchResult } from "./harness.ts";
import { median } from "./harness.ts";

export interface ColdStartOptions {
  env: Record<string, string>;
  /** Functions to start, by folder name (supabase/functions/<name>/index.ts). */
  functions: string[];
  runs?: number;
  /** Real requests whose first success is timed: function → request builder. */
  firstSuccess?: Record<string, (url: string) => Promise<Response>>;
}

/** A function may take this long to start (the target is about a tenth of a second). */
const startTimeoutMs = 30_000;
const port = 8000;
const root = new URL("../", import.meta.url);
const functionsDir = new URL("supabase/functions/", root);

/** Every function as deployed: each folder of supabase/functions/ with an index.ts. */
export async function deployedFunctions(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(functionsDir)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    try {
      await Deno.stat(new URL(`${entry.name}/index.ts`, functionsDir));
      names.push(entry.name);
    } catch {
      // not a function
    }
  }
  return names.sort();
}

export async function benchColdStart(options: ColdStartOptions): Promise<BenchResult[]> {
  const runs = options.runs ?? 5;
  const bare = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(bare, 'Deno.serve(() => new Response("ok"));\n');
  const results: BenchResult[] = [];
  try {
    await startOnce(bare, options.env); // warms the module cache; not counted
    type FirstRequest = ((url: string) => Promise<Response>) | undefined;
    const entries: { title: string; name: string; request: FirstRequest }[] = [
      ...options.functions.map((name) => ({
        title: `cold start ${name}`,
        name,
        request: undefined,
      })),
      ...Object.entries(options.firstSuccess ?? {}).map(([name, request]) => ({
        title: `cold start → first success ${name}`,
        name,
        request,
      })),
    ];
    for (const { title, name, request } of entries) {
      const { ms, bareMs } = await alternate(bare, entryOf(name), options.env, runs, request);
      results.push({
        name: title,
        // Rates are starts per second, so the ratio reads like every other figure: ≥ 0.5 is a
        // start at most twice as long as the bare file's.
        rate: 1000 / ms,
        baselineRate: 1000 / bareMs,
        target: request ? null : 0.5,
        unit: "starts/s",
        baseline: `a bare Deno.serve file: ${bareMs.toFixed(0)} ms; this: ${ms.toFixed(0)} ms`,
      });
    }
  } finally {
    await Deno.remove(bare);
  }
  return results;
}

/**
 * Median start times of `entry` and of the bare file, started in alternation (after one start of
 * `entry` that is not counted), so a machine that slows down affects both alike.
 */
async function alternate(
  bare: string,
  entry: string,
  env: Record<string, string>,
  runs: number,
  request?: (url: string) => Promise<Response>,
): Promise<{ ms: number; bareMs: number }> {
  await startOnce(entry, env, request);
  const times: number[] = [], bareTimes: number[] = [];
  for (let run = 0; run < runs; run++) {
    bareTimes.push(await startOnce(bare, env));
    times.push(await startOnce(entry, env, request));
  }
  return { ms: median(times), bareMs: median(bareTimes) };
}

function entryOf(name: string): string {
  return new URL(`${name}/index.ts`, functionsDir).pathname;
}

/** Milliseconds from spawning `entry` to its first answer (or first 2xx of `request`). */
async function startOnce(
  entry: string,
  env: Record<string, string>,
  request?: (url: string) => Promise<Response>,
): Promise<number> {
  // Deno.serve without options listens on 8000, as every index.ts does: one process at a time,
  // and nothing else may hold the port, or its answers would be timed instead.
  assertPortFree();
  const url = `http://127.0.0.1:${port}`;
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--config", new URL("deno.json", root).pathname, entry],
    env: { ...env, DENO_NO_PACKAGE_JSON: "1", LOG_LEVEL: "silent" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.finally(() => exited = true);
  let lastStatus = 0;
  try {
    while (!exited && performance.now() - started < startTimeoutMs) {
      try {
        const res = request ? await request(url) : await fetch(url);
        await res.body?.cancel();
        lastStatus = res.status;
        if (!request || res.ok) return performance.now() - started;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  } finally {
    if (!exited) child.kill();
    await status;
  }
  const why = exited ? "exited" : `did not answer ${request ? "2xx " : ""}within 30 s`;
  throw new Error(
    `${entry} ${why}${lastStatus ? ` (last status ${lastStatus})` : ""}\n${await stderr}`,
  );
}

function assertPortFree(): void {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  } catch {
    throw new Error(`port ${port} is in use: the cold-start bench needs it (Deno.serve's default)`);
  }
}
