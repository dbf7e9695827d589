/**
 * Email in `npm run dev` (SPEC §11): the local Resend emulator when RESEND_API_KEY is unset, a
 * loop that calls email-dispatch every few seconds through the local server (with the secret key,
 * as pg_cron does on Supabase), and `GET /_dev/mail`, the emulator's mailbox as JSON. Local
 * tooling only, never deployed.
 */
import type { Env } from "../supabase/functions/_shared/config.ts";
import { json } from "../supabase/functions/_shared/http.ts";
import {
  createLogger,
  type Logger,
  type LogLevel,
  maskEmail,
} from "../supabase/functions/_shared/log.ts";
import { type ResendEmulator, startResendEmulator } from "./emulators/resend.ts";

export interface DevEmail {
  /** What was filled in, for the dev server's notes; null when Resend is configured. */
  note: string | null;
  /** `GET /_dev/mail` → `{ emails: [...] }` (the emulator's mailbox, oldest first); else null. */
  route(req: Request): Response | null;
  /** Calls `${functionsUrl}/email-dispatch` every `intervalMs` until closed; runs never overlap. */
  startDispatchLoop(functionsUrl: string, secretKey: string | undefined): void;
  /**
   * The functions' logger, without the loop's routine lines (a 200 of email-dispatch every few
   * seconds would bury everything else), written to `write` (default console.log).
   */
  logger(level: LogLevel, write?: (line: string) => void): Logger;
  close(): Promise<void>;
}

const defaultFrom = "Platform <no-reply@localhost.test>";

/**
 * Fills RESEND_API_KEY, RESEND_API_URL and EMAIL_FROM in `env` with a local emulator when
 * RESEND_API_KEY is unset (SITE_URL is the dev server's own URL, set by dev.ts).
 */
export async function setUpDevEmail(
  env: Env,
  options: { intervalMs?: number } = {},
): Promise<DevEmail> {
  const intervalMs = options.intervalMs ?? 3_000;
  let emulator: ResendEmulator | null = null;
  let note: string | null = null;
  if (!env.RESEND_API_KEY) {
    emulator = await startResendEmulator({
      onEmail: (email) =>
        console.log(
          `[resend emulator] "${email.subject}" to ${email.to.map(maskEmail).join(", ")}` +
            " (GET /_dev/mail)",
        ),
    });
    Object.assign(env, {
      RESEND_API_KEY: emulator.apiKey,
      RESEND_API_URL: emulator.url,
      EMAIL_FROM: env.EMAIL_FROM || defaultFrom,
    });
    note = `RESEND_API_KEY is not set; emails go to the Resend emulator at ${emulator.url}`;
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let lastProblem = "";

  return {
    note,
    route(req) {
      if (new URL(req.url).pathname !== "/_dev/mail") return null;
      if (req.method !== "GET") {
        return json({ code: "METHOD_NOT_ALLOWED", message: "Use GET" }, 405, { allow: "GET" });
      }
      if (!emulator) {
        return json(
          { code: "NOT_FOUND", message: "RESEND_API_KEY is set: mail goes to Resend" },
          404,
        );
      }
      return json({ emails: emulator.mailbox() }, 200, { "cache-control": "no-store" });
    },
    startDispatchLoop(functionsUrl, secretKey) {
      if (!secretKey) {
        console.log("- no secret API key: the email dispatch loop is off");
        return;
      }
      const tick = async () => {
        let problem = "";
        try {
          const res = await fetch(`${functionsUrl}/email-dispatch`, {
            method: "POST",
            headers: { apikey: secretKey },
          });
          const body = await res.json().catch(() => null);
          if (!res.ok) problem = `${res.status} ${body?.code ?? ""}: ${body?.message ?? ""}`;
        } catch (error) {
          problem = error instanceof Error ? error.message : String(error);
        }
        // Each new problem once, not every few seconds.
        if (problem && problem !== lastProblem && !closed) {
          console.log(`[email-dispatch loop] ${problem}`);
        }
        lastProblem = problem;
        if (!closed) timer = setTimeout(tick, intervalMs);
      };
      timer = setTimeout(tick, 0);
    },
    logger(level, write = (line) => console.log(line)) {
      return createLogger({
        level,
        write(line) {
          const entry = JSON.parse(line);
          const routine = entry.fn === "email-dispatch" && entry.event === "request" &&
            entry.status === 200;
          if (!routine) write(line);
        },
      });
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await emulator?.close();
    },
  };
}
