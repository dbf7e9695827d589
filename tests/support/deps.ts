/** Handler dependencies for tests: explicit config, the test database, an injectable clock. */
import { type Config, type Env, loadConfig } from "../../supabase/functions/_shared/config.ts";
import type { Deps } from "../../supabase/functions/_shared/deps.ts";
import { testDatabaseUrl, testSql } from "./db.ts";

export const testJwtSecret = "test-jwt-secret-with-at-least-32-characters!!";
export const testSupabaseUrl = "http://127.0.0.1:54321";

/** The environment every test starts from: core settings only, no provider configured. */
export function testEnv(overrides: Env = {}): Env {
  return {
    SUPABASE_URL: testSupabaseUrl,
    SUPABASE_DB_URL: testDatabaseUrl,
    JWT_SECRET: testJwtSecret,
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

export function testDeps(
  options: { env?: Env; clock?: TestClock } = {},
): Deps & { clock: TestClock } {
  const clock = options.clock ?? new TestClock();
  return { config: testConfig(options.env), sql: testSql(), now: clock.now, clock };
}
