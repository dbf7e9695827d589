/**
 * The local console: the page `npm run dev` serves at `/`, built on `client/mod.ts` (WorkOS and
 * email-OTP sign-in, `me`, workspaces, refresh, sign-out, the email emulator's mailbox). Local
 * tooling only, never deployed.
 *
 * {@linkcode consoleRoutes} answers, on loopback hosts only (a DNS-rebinding page must not read the
 * emulated codes):
 *
 * - `GET /`, `/style.css`, `/favicon.svg`: the files of `local/console/`;
 * - `GET /console.js`: `local/console/console.ts` and the client, bundled once at start for
 *   browsers (`deno bundle --platform browser`, so the dev server needs `--allow-run`);
 * - `GET /_dev/config.json`: `{ functions_url, publishable_key, mail_url, codes }`, what the page
 *   needs to build its client (dev only: a publishable key is public anyway);
 * - `GET /_dev/codes?email=`: the one-time codes the Stytch emulator "sent", newest first.
 *
 * Anything else answers null, so the dev server can chain its own routes (the mailbox) after it.
 */

/** A code the Stytch emulator issued, as `/_dev/codes` lists it. */
export interface DevCode {
  email: string;
  code: string;
  /** ISO 8601 time the code was issued. */
  sent_at: string;
}

/** The emulated codes a dev server keeps for its console: see {@linkcode devCodes}. */
export interface DevCodes {
  /** Keeps a code; pass it as the Stytch emulator's `onCode`. */
  record(email: string, code: string): void;
  /** The codes kept, newest first; only `email`'s (case-insensitive) when given. */
  list(email?: string | null): DevCode[];
}

/** Options of {@linkcode consoleRoutes}. */
export interface ConsoleOptions {
  /** The functions' base URL as the browser reaches them, e.g. `http://127.0.0.1:54321/functions/v1`. */
  functionsUrl: string;
  /** The publishable key the page's client sends as `apikey`. */
  publishableKey: string;
  /** The emulated one-time codes (`DevCodes.list`); without it the page says codes go by email. */
  codes?: ((email: string | null) => DevCode[]) | null;
  /** Where the page reads the email emulator's mailbox; `/_dev/mail` by default, null for none. */
  mailUrl?: string | null;
}

/** Answers the console's paths, or null for any other path. */
export type ConsoleRoutes = (req: Request) => Promise<Response | null>;

/** Codes kept by {@linkcode devCodes}: enough for a session of trying things, bounded. */
const keptCodes = 50;

/**
 * A bounded in-memory list of emulated codes, for the Stytch emulator's `onCode` and the console.
 *
 * @example
 * ```ts
 * const codes = devCodes();
 * const stytch = await startStytchEmulator({ onCode: codes.record });
 * const routes = await consoleRoutes({ functionsUrl, publishableKey, codes: codes.list });
 * ```
 */
export function devCodes(now: () => Date = () => new Date()): DevCodes {
  const codes: DevCode[] = [];
  return {
    record(email, code) {
      codes.unshift({ email, code, sent_at: now().toISOString() });
      codes.length = Math.min(codes.length, keptCodes);
    },
    list(email) {
      const wanted = email?.trim().toLowerCase();
      return codes.filter((entry) => !wanted || entry.email.toLowerCase() === wanted)
        .map((entry) => ({ ...entry }));
    },
  };
}

const consoleDir = new URL("./console/", import.meta.url);
const loopbackHosts = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * Builds the console's routes: reads its files and bundles its script once, here. A bundle that
 * fails (no `--allow-run`, a syntax error) does not stop the dev server: it is logged in one line
 * and the page shows why instead of the console.
 *
 * @example
 * ```ts
 * const routes = await consoleRoutes({ functionsUrl, publishableKey, codes: codes.list });
 * const server = await startLocalServer({
 *   env,
 *   fallback: async (req) => await routes(req) ?? new Response("Not found", { status: 404 }),
 * });
 * ```
 */
export async function consoleRoutes(options: ConsoleOptions): Promise<ConsoleRoutes> {
  if (!URL.canParse(options.functionsUrl)) {
    throw new TypeError("Cannot serve the console: functionsUrl is not a URL");
  }
  const functionsUrl = new URL(options.functionsUrl);
  const mailUrl = options.mailUrl === undefined ? "/_dev/mail" : options.mailUrl;
  const codes = options.codes ?? null;

  const [page, style, favicon, script] = await Promise.all([
    Deno.readTextFile(new URL("index.html", consoleDir)),
    Deno.readTextFile(new URL("style.css", consoleDir)),
    Deno.readTextFile(new URL("favicon.svg", consoleDir)),
    bundleConsole().catch((error: Error) => {
      console.error(`[console] cannot bundle the page script: ${error.message}`);
      return failedBundle(error.message);
    }),
  ]);
  const config = {
    functions_url: functionsUrl.href.replace(/\/+$/, ""),
    publishable_key: options.publishableKey,
    mail_url: mailUrl,
    codes: codes !== null,
  };
  const pageHeaders = {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": [
      "default-src 'none'",
      "script-src 'self'",
      // Inline styles only for the sandboxed previews of emailed HTML (no scripts run there).
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      // The functions may be on another origin (a deployed project), the mailbox is on this one.
      `connect-src 'self' ${functionsUrl.origin}`,
      "frame-src 'self'",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join("; "),
    ...commonHeaders,
  };

  const routes = new Map<string, (url: URL, host: string) => Response>([
    ["/", index],
    ["/index.html", index],
    ["/console.js", () => file(script, "text/javascript; charset=utf-8")],
    ["/style.css", () => file(style, "text/css; charset=utf-8")],
    ["/favicon.svg", () => file(favicon, "image/svg+xml")],
    ["/_dev/config.json", () => jsonResponse(config)],
    ["/_dev/codes", devCodesRoute],
  ]);

  return (req) => {
    const url = new URL(req.url);
    const route = routes.get(url.pathname);
    if (!route) return Promise.resolve(null);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return Promise.resolve(
        new Response("Method not allowed", { status: 405, headers: { allow: "GET, HEAD" } }),
      );
    }
    // The Host header, not the socket: a rebound DNS name reaches 127.0.0.1 with its own Host.
    const host = req.headers.get("host") ?? url.host;
    if (!loopbackHosts.has(hostname(host))) {
      return Promise.resolve(
        new Response("The local console answers on 127.0.0.1 and localhost only", {
          status: 403,
          headers: commonHeaders,
        }),
      );
    }
    return Promise.resolve(route(url, host));
  };

  function file(body: string, contentType: string): Response {
    return new Response(body, { headers: { "content-type": contentType, ...commonHeaders } });
  }

  /** The page, on the functions' host: WorkOS sends the browser back there, with its storage. */
  function index(_url: URL, host: string): Response {
    if (host !== functionsUrl.host && loopbackHosts.has(functionsUrl.hostname)) {
      return new Response(null, {
        status: 302,
        headers: { location: `${functionsUrl.origin}/`, ...commonHeaders },
      });
    }
    return new Response(page, { headers: pageHeaders });
  }

  function devCodesRoute(url: URL): Response {
    if (!codes) return jsonResponse({ codes: [] });
    return jsonResponse({ codes: codes(url.searchParams.get("email")) });
  }
}

/**
 * `local/console/console.ts` and what it imports (the client) as one browser ES module, by the
 * running Deno's own `deno bundle` (about 0.2 s, offline).
 */
export async function bundleConsole(): Promise<string> {
  const entry = new URL("console.ts", consoleDir);
  const run = await Deno.permissions.query({ name: "run", command: Deno.execPath() });
  if (run.state !== "granted") {
    throw new Error("the dev server runs without --allow-run, which `deno bundle` needs");
  }
  // The page imports nothing but relative modules: no config, lock file or package.json to read
  // (package.json's devDependencies would be downloaded otherwise).
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--no-config", "--no-lock", "--platform", "browser", entry.href],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_NO_PACKAGE_JSON: "1" },
  }).output();
  const errors = new TextDecoder().decode(output.stderr).trim();
  if (!output.success) throw new Error(errors || `deno bundle exited with ${output.code}`);
  return new TextDecoder().decode(output.stdout);
}

/** A script that says on the page why the console could not be built. */
function failedBundle(reason: string): string {
  const message = `The console's script could not be bundled: ${reason}`;
  return `const box = document.getElementById("fatal");
if (box) { box.hidden = false; box.textContent = ${JSON.stringify(message)}; }
const status = document.getElementById("status");
if (status) status.textContent = "Not started";
`;
}

const commonHeaders = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function jsonResponse(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    headers: { "content-type": "application/json", ...commonHeaders },
  });
}

/** The name part of a Host header (`[::1]:80` → `[::1]`, `localhost:5` → `localhost`). */
function hostname(host: string): string {
  const bracketed = /^(\[[^\]]*\])(?::\d+)?$/.exec(host);
  if (bracketed) return bracketed[1].toLowerCase();
  return host.replace(/:\d+$/, "").toLowerCase();
}
