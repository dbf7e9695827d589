/**
 * What a handler depends on, passed in rather than patched: configuration, the database and the
 * clock. Each function's index.ts builds the production default once per process; tests and the
 * local server pass their own.
 */
import { type Config, type CoreConfig, type Feature, loadConfig } from "./config.ts";
import { connectDatabase, type Sql } from "./db.ts";
import { type ErrorCode, HttpError } from "./http.ts";
import { createSessionTokens, type SessionTokens } from "./sessions.ts";

export interface Deps {
  config: Config;
  /** The service connection; null when the core configuration is missing. */
  sql: Sql | null;
  now: () => Date;
}

/** Built from the process environment; one database pool per process. */
export function defaultDeps(): Deps {
  const env = Deno.env.toObject();
  const config = loadConfig(env);
  // The pool only needs the database URL (webhooks work without the JWT settings).
  const sql = env.SUPABASE_DB_URL ? connectDatabase(env.SUPABASE_DB_URL) : null;
  return { config, sql, now: () => new Date() };
}

export interface Platform {
  core: CoreConfig;
  sql: Sql;
  tokens: SessionTokens;
}

/**
 * The services every session function needs, built once when the handler is created. The
 * returned getter throws 503 naming the variable when the core configuration is missing.
 */
export function platformServices(deps: Deps): () => Platform {
  const { core } = deps.config;
  if (!core.ok || !deps.sql) {
    const message = core.ok ? "SUPABASE_DB_URL is missing" : core.message;
    return () => {
      throw new HttpError(503, "NOT_CONFIGURED", `Server is not configured: ${message}`);
    };
  }
  const platform = { core: core.value, sql: deps.sql, tokens: createSessionTokens(core.value) };
  return () => platform;
}

/**
 * What a function builds from a feature's settings (an SDK client, keys), built once when the
 * handler is created. While the feature is not configured, the getter throws 503 with the
 * feature's code and a message naming the variable, never its value (SPEC §3).
 *
 * @example
 * const whatsapp = featureServices(deps.config.whatsapp, "WHATSAPP_NOT_CONFIGURED", "WhatsApp webhook", (c) => c);
 * // in the handler: const { appSecret } = whatsapp();
 */
export function featureServices<C, T>(
  feature: Feature<C>,
  code: ErrorCode,
  featureName: string,
  build: (config: C) => T,
): () => T {
  if (!feature.ok) {
    const error = new HttpError(503, code, `${featureName} is not configured: ${feature.message}`);
    return () => {
      throw error;
    };
  }
  const services = build(feature.value);
  return () => services;
}
