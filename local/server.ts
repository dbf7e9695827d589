/**
 * The local server: every function of supabase/functions/ in one process, at the URLs Supabase
 * serves them (`/functions/v1/<name>`), honouring `verify_jwt` from supabase/config.toml the way
 * the Edge Runtime does (a function with verify_jwt = true needs a valid project JWT, the anon key
 * included). Functions are discovered from their folders, so a new one appears without edits here.
 * Local tooling only, never deployed.
 */
import { jwtVerify, SignJWT } from "jose";
import { parse as parseToml } from "smol-toml";
import type { Env } from "../supabase/functions/_shared/config.ts";
import { connectDatabase, type Sql } from "../supabase/functions/_shared/db.ts";
import { defaultDeps, type Deps } from "../supabase/functions/_shared/deps.ts";
import {
  bearerToken,
  corsHeaders,
  type Handler,
  json,
} from "../supabase/functions/_shared/http.ts";

const functionsDir = new URL("../supabase/functions/", import.meta.url);
const configToml = new URL("../supabase/config.toml", import.meta.url);

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

interface LoadedFunction {
  handler: Handler;
  verifyJwt: boolean;
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
  const jwtSecret = options.env.JWT_SECRET;

  async function route(req: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const { pathname } = new URL(req.url);
    if (options.fallback && !pathname.startsWith("/functions/")) return options.fallback(req);
    const match = /^\/functions\/v1\/([a-z0-9_-]+)(\/.*)?$/.exec(pathname);
    const fn = match && functions.get(match[1]);
    if (!fn) return json({ code: "NOT_FOUND", message: "Function not found" }, 404);
    // The Edge Runtime lets CORS preflight through without a JWT.
    if (fn.verifyJwt && req.method !== "OPTIONS") {
      const token = bearerToken(req);
      const verified = token && jwtSecret
        ? await verifyProjectJwt(token, jwtSecret, deps.now())
        : false;
      if (!verified) {
        return json(
          {
            code: "UNAUTHORIZED",
            message: token ? "Invalid JWT" : "Missing authorization header",
          },
          401,
          corsHeaders,
        );
      }
    }
    return await fn.handler(req, info);
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

/** Every folder of supabase/functions/ with a handler.ts, and its verify_jwt (default true). */
async function loadFunctions(deps: Deps): Promise<Map<string, LoadedFunction>> {
  const settings = parseToml(await Deno.readTextFile(configToml)) as {
    functions?: Record<string, { verify_jwt?: boolean }>;
  };
  const functions = new Map<string, LoadedFunction>();
  for await (const entry of Deno.readDir(functionsDir)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    const handlerUrl = new URL(`${entry.name}/handler.ts`, functionsDir);
    try {
      await Deno.stat(handlerUrl);
    } catch {
      continue;
    }
    const module = await import(handlerUrl.href) as { createHandler(deps: Deps): Handler };
    functions.set(entry.name, {
      handler: module.createHandler(deps),
      verifyJwt: settings.functions?.[entry.name]?.verify_jwt ?? true,
    });
  }
  return functions;
}

/**
 * What the Edge Runtime's `verify_jwt` gate checks: any JWT of the project (anon key, service
 * key, user tokens), HS256 with the project's secret, unexpired. Signature and expiry only.
 */
async function verifyProjectJwt(token: string, jwtSecret: string, now: Date): Promise<boolean> {
  try {
    await jwtVerify(token, new TextEncoder().encode(jwtSecret), {
      algorithms: ["HS256"],
      currentDate: now,
      clockTolerance: 30,
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * The project's anon key as Supabase issues it: an HS256 JWT `{role: "anon", iss: "supabase"}`
 * (10 years), for calling the functions that have verify_jwt = true.
 */
export function mintAnonKey(jwtSecret: string, now = new Date()): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({ role: "anon", iss: "supabase" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(iat)
    .setExpirationTime(iat + 10 * 365 * 24 * 3600)
    .sign(new TextEncoder().encode(jwtSecret));
}
