/**
 * Handler dependencies for tests: explicit config, the test database, an injectable clock, a
 * logger whose lines are kept for assertions, and provider clients that never retry.
 */
import { type Config, type Env, loadConfig } from "../../supabase/functions/_shared/config.ts";
import type { Deps } from "../../supabase/functions/_shared/deps.ts";
import { createLogger, type Logger } from "../../supabase/functions/_shared/log.ts";
import { createStytchOtp, type StytchOtpOptions } from "../../supabase/functions/_shared/stytch.ts";
import {
  createWorkosAuth,
  type WorkosAuthOptions,
} from "../../supabase/functions/_shared/workos.ts";
import { testDatabaseUrl, testSql } from "./db.ts";
import { testApiKeyEnv } from "./keys.ts";

export const testJwtSecret = "test-jwt-secret-with-at-least-32-characters!!";
export const testSupabaseUrl = "http://127.0.0.1:54321";

/** The environment every test starts from: core settings only, no provider configured. */
export function testEnv(overrides: Env = {}): Env {
  return {
    SUPABASE_URL: testSupabaseUrl,
    SUPABASE_DB_URL: testDatabaseUrl,
    JWT_SECRET: testJwtSecret,
    ...testApiKeyEnv,
    ...overrides,
  };
}

/** A clock tests move by hand instead of sleeping. */
export class TestClock {
  constructor(private current = new Date()) {}
  now = (): Date => new Date(this.current);
  advanceSeconds(seconds: number): void {
    this.current = new Date(this.current.getTime() + seconds * 1000);
  }
}

export function testConfig(overrides: Env = {}): Config {
  return loadConfig(testEnv(overrides));
}

/** A logger at `info` whose lines are parsed and kept, in order, in `lines`. */
export function capturedLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: createLogger({ write: (line) => lines.push(JSON.parse(line)) }), lines };
}

export interface TestDepsOptions {
  env?: Env;
  clock?: TestClock;
  /** WorkOS client tuning; tests never retry (`maxRetries: 0`) unless they say so. */
  workos?: WorkosAuthOptions;
  stytch?: StytchOtpOptions;
}

export type TestDeps = Deps & {
  clock: TestClock;
  /** Every line the functions logged, parsed. */
  logs: Record<string, unknown>[];
};

export function testDeps(options: TestDepsOptions = {}): TestDeps {
  const clock = options.clock ?? new TestClock();
  const { log, lines } = capturedLog();
  return {
    config: testConfig(options.env),
    sql: testSql(),
    now: clock.now,
    log,
    workos: (config) => createWorkosAuth(config, { maxRetries: 0, ...options.workos }),
    stytch: (config) => createStytchOtp(config, options.stytch),
    clock,
    logs: lines,
  };
}
