/** Pointing the Stytch settings at a local emulator. */
import type { Env } from "../../supabase/functions/_shared/config.ts";
import type { StytchConfig } from "../../supabase/functions/_shared/config.ts";
import {
  createStytchOtp,
  type StytchOtp,
  type StytchOtpOptions,
} from "../../supabase/functions/_shared/stytch.ts";
import {
  startStytchEmulator,
  type StytchEmulator,
  type StytchEmulatorOptions,
} from "../../local/emulators/stytch.ts";
import { createLogger } from "../../supabase/functions/_shared/log.ts";
import { type LocalServer, mintAnonKey, startLocalServer } from "../../local/server.ts";
import { testSql } from "./db.ts";
import { capturedLog, TestClock, type TestDeps, testDeps, testEnv, testJwtSecret } from "./deps.ts";

/** STYTCH_* variables for a running emulator. */
export function stytchEnv(stytch: StytchEmulator): Env {
  return {
    STYTCH_PROJECT_ID: stytch.projectId,
    STYTCH_SECRET: stytch.secret,
    STYTCH_API_URL: stytch.url,
  };
}

export interface StytchTestbed {
  stytch: StytchEmulator;
  clock: TestClock;
  /** Test deps whose STYTCH_* settings point at the emulator. */
  deps: TestDeps;
  /** The Stytch failures the functions logged, in order (`stytch_call_failed` lines). */
  logs: Record<string, unknown>[];
}

/** A Stytch emulator and the test deps pointed at it, sharing one test clock. */
export async function stytchTestbed(
  options: { emulator?: StytchEmulatorOptions; env?: Env; stytch?: StytchOtpOptions } = {},
): Promise<StytchTestbed> {
  const clock = new TestClock();
  const stytch = await startStytchEmulator({ now: clock.now, ...options.emulator });
  const env = { ...stytchEnv(stytch), ...options.env };
  const deps = testDeps({ env, clock, stytch: options.stytch });
  const logs: Record<string, unknown>[] = [];
  deps.log = createLogger({
    write(line) {
      const entry = JSON.parse(line);
      deps.logs.push(entry);
      if (entry.event === "stytch_call_failed") logs.push(entry);
    },
  });
  return { stytch, clock, deps, logs };
}

/** The Stytch operations with a logger bound, as a test calls them. */
export interface LoggedStytchOtp {
  sendEmailCode(email: string): ReturnType<StytchOtp["sendEmailCode"]>;
  authenticateCode(methodId: string, code: string): ReturnType<StytchOtp["authenticateCode"]>;
}

/** A Stytch client whose failure logs are kept in `logs`, parsed. */
export function loggedStytchOtp(
  config: StytchConfig,
  options: StytchOtpOptions = {},
): { otp: LoggedStytchOtp; logs: Record<string, unknown>[] } {
  const client = createStytchOtp(config, options);
  const { log, lines } = capturedLog();
  return {
    otp: {
      sendEmailCode: (email) => client.sendEmailCode(email, log),
      authenticateCode: (methodId, code) => client.authenticateCode(methodId, code, log),
    },
    logs: lines,
  };
}

export interface OtpStack {
  stytch: StytchEmulator;
  server: LocalServer;
  clock: TestClock;
  /** The project's legacy anon key: all an attacker has besides an email. */
  anonKey: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The Stytch emulator and the local server on the test database, sharing one clock. */
export async function startOtpStack(): Promise<OtpStack> {
  const clock = new TestClock();
  const stytch = await startStytchEmulator({ now: clock.now });
  const server = await startLocalServer({
    env: testEnv(stytchEnv(stytch)),
    sql: testSql(),
    now: clock.now,
  });
  return {
    stytch,
    server,
    clock,
    anonKey: await mintAnonKey(testJwtSecret, clock.now()),
    async [Symbol.asyncDispose]() {
      await server.close();
      await stytch.close();
    },
  };
}
