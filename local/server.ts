/**
 * The local server: every function of supabase/functions/ in one process, at the URLs Supabase
 * serves them (`/functions/v1/<name>` and its sub-paths). Like the deployed functions (all with
 * verify_jwt = false), each function checks its caller itself: there is no gateway here. Functions
 * are discovered from their folders, so a new one appears without edits here. Local tooling only,
 * never deployed.
 */
import { SignJWT } from "jose";
import type { Env } from "../supabase/functions/_shared/config.ts";
import type { Sql } from "../supabase/functions/_shared/db.ts";
import { connectDatabase } from "../supabase/functions/_shared/pool.ts";
import { defaultDeps, type Deps } from "../supabase/functions/_shared/deps.ts";
import { type Handler, json } from "../supabase/functions/_shared/http.ts";

const functionsDir = new URL("../supabase/functions/", import.meta.url);

export interface LocalServerOptions {
  /** The functions' environment (SUPABASE_URL, SUPABASE_DB_URL, JWT_SECRET, provider keys…). */
  env: Env;
  /** 0 (default) picks a free port. */
  port?: number;
  /** A pool to share (tests); else one is opened on SUPABASE_DB_URL. */
  sql?: Sql;
  /** Pool size when the server opens its own pool (1 for PGlite). */
  poolSize?: number;
  now?: () => Date;
  /** Answers paths outside /functions/v1/ (the dev landing page); else 404. */
  fallback?: Handler;
  /** Replaces parts of the functions' dependencies (tests: provider factories, a logger). */
  deps?: Partial<Deps>;
}

export interface LocalServer {
  /** e.g. http://127.0.0.1:54321 */
  url: string;
  functionsUrl: string;
  functions: string[];
  close(): Promise<void>;
}

/** Starts the server with every function built once from `env`. */
export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const databaseUrl = options.env.SUPABASE_DB_URL;
  const ownSql = !options.sql && databaseUrl
    ? connectDatabase(databaseUrl, { max: options.poolSize ?? 10 })
    : undefined;
  const deps = defaultDeps(options.env, {
    sql: options.sql ?? ownSql ?? null,
    ...(options.now ? { now: options.now } : {}),
    ...options.deps,
  });
  const functions = await loadFunctions(deps);

  async function route(req: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const { pathname } = new URL(req.url);
    if (options.fallback && !pathname.startsWith("/functions/")) return options.fallback(req);
    const match = /^\/functions\/v1\/([a-z0-9_-]+)(\/.*)?$/.exec(pathname);
    const handler = match && functions.get(match[1]);
    if (handler) return await handler(req, info);
    // What Supabase answers for a function that does not exist, in our error shape.
    return json({ code: "NOT_FOUND", message: "Function not found" }, 404, {
      "x-request-id": crypto.randomUUID(),
      "access-control-allow-origin": "*",
      "access-control-expose-headers": "x-request-id",
    });
  }

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
  }, route);
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    functionsUrl: `${url}/functions/v1`,
    functions: [...functions.keys()].sort(),
    async close() {
      await server.shutdown();
      await ownSql?.end();
    },
  };
}

/** Every folder of supabase/functions/ with a handler.ts (`_shared` is not a function). */
async function loadFunctions(deps: Deps): Promise<Map<string, Handler>> {
  const functions = new Map<string, Handler>();
  for await (const entry of Deno.readDir(functionsDir)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    const handlerUrl = new URL(`${entry.name}/handler.ts`, functionsDir);
    try {
      await Deno.stat(handlerUrl);
    } catch {
      continue;
    }
    const module = await import(handlerUrl.href) as { createHandler(deps: Deps): Handler };
    functions.set(entry.name, module.createHandler(deps));
  }
  return functions;
}

/**
 * The project's legacy anon key as Supabase issues it: an HS256 JWT `{role: "anon", iss:
 * "supabase"}` (10 years), accepted wherever a publishable key is while JWT_SECRET is set.
 */
export function mintAnonKey(jwtSecret: string, now = new Date()): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({ role: "anon", iss: "supabase" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(iat)
    .setExpirationTime(iat + 10 * 365 * 24 * 3600)
    .sign(new TextEncoder().encode(jwtSecret));
}
