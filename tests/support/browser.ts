/**
 * Browser tests: Debian's Chromium driven by playwright-core (never playwright's own browser
 * downloads), and `npm run dev`'s server (`deno task dev`) started as a child process, exactly as a
 * developer starts it.
 */
import { freePort } from "../../local/free_port.ts";
import { type Browser, chromium } from "playwright-core";

/** Where Debian's `chromium` package puts the browser. */
export const chromiumPath = "/usr/bin/chromium";

/** Where the tests save their screenshots (outside the repository). */
export const screenshotDir = "/tmp/platform-auth-console";

/**
 * Why the browser tests cannot run here, or null when they can. Said once, in one line, by the
 * test file that skips.
 */
export function browserSkipReason(): string | null {
  try {
    const info = Deno.statSync(chromiumPath);
    if (!info.isFile) return `${chromiumPath} is not a file`;
    return null;
  } catch {
    return `${chromiumPath} is missing (install it with: apt-get install -y chromium)`;
  }
}

/** Starts Chromium headless, offline-friendly: no sandbox (root in CI), GPU, sync or updates. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A running `npm run dev`. */
export interface DevServer {
  /** e.g. `http://127.0.0.1:PORT` */
  url: string;
  /** What the server printed so far (stdout and stderr), for failure messages. */
  output(): string;
  close(): Promise<void>;
}

/**
 * Runs `deno task dev` from the repository root on a free port. The environment is only what a
 * developer's shell would have (PATH, HOME) plus PORT, and the test database when it is a real
 * Postgres (a PGlite one takes a single connection: the dev server then starts its own). Resolves
 * once the console's config answers; rejects at once when the server is up without the console.
 */
export async function startDevServer(timeoutMs = 60_000): Promise<DevServer> {
  const root = new URL("../../", import.meta.url).pathname;
  const port = freePort();
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "",
    PORT: String(port),
    NO_COLOR: "1",
  };
  const databaseUrl = Deno.env.get("TEST_DATABASE_URL");
  if (databaseUrl && Deno.env.get("TEST_DATABASE_KIND") !== "pglite") {
    env.SUPABASE_DB_URL = databaseUrl;
  }
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.DENO_DIR = denoDir;

  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "dev"],
    cwd: root,
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let printed = "";
  const drained = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) printed += chunk;
  }));
  let exited = false;
  const status = child.status.then((value) => {
    exited = true;
    return value;
  });

  const url = `http://127.0.0.1:${port}`;
  const server: DevServer = {
    url,
    output: () => printed,
    async close() {
      if (!exited) child.kill("SIGTERM");
      await status;
      await drained;
    },
  };

  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) {
      await drained;
      throw new Error(`npm run dev exited before answering:\n${printed}`);
    }
    const status = await fetch(`${url}/_dev/config.json`).then(async (response) => {
      await response.body?.cancel();
      return response.status;
    }, () => 0);
    if (status === 200) return server;
    if (status === 404) {
      await server.close();
      throw new Error(
        "npm run dev is up but does not serve the console: local/dev.ts must answer with " +
          "consoleRoutes (local/console.ts)",
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await server.close();
  throw new Error(
    `npm run dev did not answer /_dev/config.json within ${timeoutMs} ms:\n${printed}`,
  );
}
