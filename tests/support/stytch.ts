/** Pointing the Stytch settings at a local emulator. */
import type { Deps } from "../../supabase/functions/_shared/deps.ts";
import type { Env } from "../../supabase/functions/_shared/config.ts";
import type { StytchLogEntry } from "../../supabase/functions/_shared/stytch.ts";
import {
  startStytchEmulator,
  type StytchEmulator,
  type StytchEmulatorOptions,
} from "../../local/emulators/stytch.ts";
import { TestClock, testDeps } from "./deps.ts";

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
  deps: Deps;
  /** What the Stytch client logged, in order; `log` appends to it. */
  logs: StytchLogEntry[];
  log(entry: StytchLogEntry): void;
}

/** A Stytch emulator and the test deps pointed at it, sharing one test clock. */
export async function stytchTestbed(
  options: { emulator?: StytchEmulatorOptions; env?: Env } = {},
): Promise<StytchTestbed> {
  const clock = new TestClock();
  const stytch = await startStytchEmulator({ now: clock.now, ...options.emulator });
  const deps = testDeps({ env: { ...stytchEnv(stytch), ...options.env }, clock });
  const logs: StytchLogEntry[] = [];
  return { stytch, clock, deps, logs, log: (entry) => logs.push(entry) };
}
