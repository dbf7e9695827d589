/**
 * What a handler depends on, passed in rather than patched: configuration, the database, the
 * clock, the logger and the provider clients' factories. Each function's index.ts builds the
 * production default once per process; tests and the local server pass their own.
 */
import {
  type Config,
  type Env,
  loadConfig,
  type StytchConfig,
  type WorkosConfig,
} from "./config.ts";
import { type Database, lazyDatabase } from "./db.ts";
import { createLogger, type Logger } from "./log.ts";
import type { StytchOtp } from "./stytch.ts";
import type { WorkosAuth } from "./workos.ts";

export interface Deps {
  config: Config;
  /** The service connection; null when SUPABASE_DB_URL is missing or malformed. */
  sql: Database | null;
  now: () => Date;
  /** The process logger; each request logs through a child carrying its request id. */
  log: Logger;
  /** Builds the WorkOS client; called once per process, by the first request that needs it. */
  workos: (config: WorkosConfig) => WorkosAuth | Promise<WorkosAuth>;
  /** Builds the Stytch client; called once per process, by the first request that needs it. */
  stytch: (config: StytchConfig) => StytchOtp | Promise<StytchOtp>;
}

/** WorkOS's share of the 10 s within which workos-callback answers; the rest is for the database. */
const workosTimeoutMs = 9_000; // 9 s

/**
 * Built from the process environment (or `env`); one database pool per process unless `overrides`
 * brings one. The provider SDKs are imported by their factories, so a function loads one only
 * when a request needs it.
 */
export function defaultDeps(env: Env = Deno.env.toObject(), overrides: Partial<Deps> = {}): Deps {
  const config = loadConfig(env);
  return {
    config,
    sql: config.database.ok && overrides.sql === undefined
      ? lazyDatabase(config.database.value.url)
      : null,
    now: () => new Date(),
    log: createLogger({ level: config.logLevel }),
    workos: async (workos) =>
      (await import("./workos.ts")).createWorkosAuth(workos, { timeoutMs: workosTimeoutMs }),
    stytch: async (stytch) => (await import("./stytch.ts")).createStytchOtp(stytch),
    ...overrides,
  };
}
