/**
 * Logs: one JSON object per line (SPEC §4). Callers pass event names as snake_case identifiers and
 * fields of ids and counts, never tokens, codes, secrets or full email addresses.
 */

/** Fields of a log line, or a function computing them only when the line is written. */
export type LogFields = Record<string, unknown> | (() => Record<string, unknown>);

export type LogLevel = "info" | "warn" | "error" | "silent";

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (a request's id, a function's name). */
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  /** Lines below this level are not written; default `info`. */
  level?: LogLevel;
  /** Where a finished line goes; default `console.log` (tests capture it). */
  write?: (line: string) => void;
}

const rank: Record<LogLevel, number> = { info: 0, warn: 1, error: 2, silent: 3 };

/**
 * A JSON-lines logger.
 *
 * @example
 * const log = createLogger({ level: "warn" }).child({ fn: "me", request_id: id });
 * log.warn("session_revoked", { session_id });
 */
export function createLogger(
  options: LoggerOptions = {},
  base: Record<string, unknown> = {},
): Logger {
  const minimum = rank[options.level ?? "info"];
  const write = options.write ?? ((line: string) => console.log(line));
  const line = (level: Exclude<LogLevel, "silent">, event: string, fields?: LogFields) => {
    if (rank[level] < minimum) return;
    const extra = typeof fields === "function" ? fields() : fields;
    write(JSON.stringify({ level, event, ...base, ...extra, time: new Date().toISOString() }));
  };
  return {
    info: (event, fields) => line("info", event, fields),
    warn: (event, fields) => line("warn", event, fields),
    error: (event, fields) => line("error", event, fields),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

/** `ada@example.com` → `a***@example.com`: enough to correlate, not enough to identify. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf("@");
  return at < 1 ? "***" : `${email[0]}***${email.slice(at)}`;
}

/** What an unexpected error may put in a log: its name, message and stack. */
export function errorFields(error: unknown): Record<string, unknown> {
  return error instanceof Error
    ? { name: error.name, message: error.message, stack: error.stack }
    : { value: String(error) };
}
