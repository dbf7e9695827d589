/**
 * The database: the service connection on SUPABASE_DB_URL, which owns the tables (row-level
 * security protects them from `anon` and `authenticated`, not from it), and `callFunction`, the
 * one way the SQL seam modules talk to it: one SQL function call, one round trip.
 *
 * A function's connection is lazy (`lazyDatabase`): postgres.js is loaded and the pool opened by
 * the first query, so a cold start that answers without the database pays for neither.
 */
import type postgres from "postgres";
import { HttpError } from "./http.ts";

/** A postgres.js pool (tools and tests use all of it; see pool.ts). */
export type Sql = postgres.Sql;

/** What the functions need of a connection: a query as text, cancellable, and closing. */
export interface Database {
  unsafe(query: string): Promise<postgres.Row[]> & { cancel(): unknown };
  end(options?: { timeout?: number }): Promise<void>;
}

/** The deadline of every SQL call, taking a connection included (SPEC §13.6). */
export const sqlDeadlineMs = 5_000; // 5 s
/** What a client is told to wait after the database was unavailable. */
const retryAfterSeconds = 5;

/**
 * The pool of `url`, opened (and postgres.js loaded) by the first query rather than at start. A
 * query cancelled before the pool was open is cancelled as soon as it is sent.
 */
export function lazyDatabase(url: string): Database {
  let pool: Promise<Sql> | undefined;
  let opened: Sql | undefined; // once open, queries go straight to it
  const open = () => pool ??= import("./pool.ts").then((m) => opened = m.connectDatabase(url));
  return {
    unsafe(query) {
      if (opened) return opened.unsafe(query);
      let sent: ReturnType<Sql["unsafe"]> | undefined;
      let cancelled = false;
      const rows = open().then((sql) => {
        sent = sql.unsafe(query);
        if (cancelled) sent.cancel();
        return sent;
      });
      return Object.assign(rows, {
        cancel() {
          cancelled = true;
          sent?.cancel();
        },
      });
    },
    async end(options) {
      if (pool) await (await pool).end(options);
    },
  };
}

/** 503 DATABASE_UNAVAILABLE with Retry-After: what a request gets when Postgres cannot answer. */
export function databaseUnavailable(): HttpError {
  return new HttpError(
    503,
    "DATABASE_UNAVAILABLE",
    "The database is unavailable; try again shortly",
    { "retry-after": String(retryAfterSeconds) },
  );
}

/** A value `callFunction` can pass: objects and arrays travel as JSON (for jsonb parameters). */
export type SqlArgument = string | number | boolean | Date | null | undefined | object;

const functionName = /^[a-z_]+\.[a-z_]+$/;
const parameterName = /^p_[a-z_]+$/;
const defaultTag = "$arg$";

/**
 * Calls `schema.function(p_name => value, …)` and returns its result, in exactly one round trip.
 * Arguments go by name (Postgres named notation), so two swapped arguments of the same type fail
 * instead of passing silently.
 *
 * Why not a parameterised query: with prepared statements off (required by the transaction
 * pooler), postgres.js sends every query that has parameters in two round trips, first asking the
 * server for the parameter types. So arguments are sent as literals instead, each dollar-quoted
 * with a tag that does not occur in any argument: the server reads everything between the tags
 * as a plain string, never as SQL, whatever the string contains. The server casts each literal to
 * the declared parameter type (uuid, timestamptz, jsonb…).
 *
 * @example
 * await callFunction<boolean>(sql, "identity.otp_code_sent", { p_method_id: id, p_now: now });
 */
export async function callFunction<T>(
  sql: Database,
  name: string,
  args: Record<string, SqlArgument>,
): Promise<T> {
  if (!functionName.test(name)) throw new TypeError(`Not a function name: ${name}`);
  const names = Object.keys(args);
  const bad = names.find((key) => !parameterName.test(key));
  if (bad !== undefined) throw new TypeError(`Not a parameter name: ${bad}`);
  const values = Object.values(args);
  const texts = values.map(argumentText);
  // The first occurrence of the tag must be the closing one; when an argument contains it (by
  // chance or on purpose), a random tag is drawn until none does.
  let tag = defaultTag;
  while (texts.some((text) => text !== null && holdsTag(text, tag))) {
    tag = `$a${crypto.getRandomValues(new Uint32Array(2)).join("x")}$`;
  }
  const list = texts.map((text, i) =>
    `${names[i]} => ${text === null ? literal(values[i]) : `${tag}${text}${tag}`}`
  );
  const [row] = await withDeadline(sql.unsafe(`select ${name}(${list.join(", ")}) as result`));
  return row.result as T;
}

/** Queries in flight and when each must have answered; one timer sweeps them all. */
const inFlight = new Set<{ deadline: number; expire(): void }>();
let sweeper: ReturnType<typeof setInterval> | undefined;
const sweepIntervalMs = 250;

/** Expires the queries past their deadline; stops when none is left. */
function sweep(): void {
  const now = performance.now();
  for (const query of inFlight) {
    if (query.deadline <= now) {
      inFlight.delete(query);
      query.expire();
    }
  }
  if (inFlight.size === 0) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

/**
 * The query's rows, or 503 DATABASE_UNAVAILABLE when it has not answered within the deadline (to
 * within a sweep, 250 ms) or the database cannot be reached. A query past its deadline is
 * cancelled on the server, so its one statement rolls back rather than finishing unseen. One
 * shared timer rather than one per query: this runs on every request.
 */
async function withDeadline<T>(query: Promise<T> & { cancel(): void }): Promise<T> {
  let expire = () => {};
  const expired = new Promise<never>((_, reject) => {
    expire = () => {
      query.catch(() => {}); // its cancellation arrives later; nobody waits for it
      query.cancel();
      reject(databaseUnavailable());
    };
  });
  const entry = { deadline: performance.now() + sqlDeadlineMs, expire };
  inFlight.add(entry);
  if (sweeper === undefined) {
    sweeper = setInterval(sweep, sweepIntervalMs);
    Deno.unrefTimer(Number(sweeper)); // a pending sweep never keeps a process alive
  }
  try {
    return await Promise.race([query, expired]);
  } catch (error) {
    if (isUnreachable(error)) throw databaseUnavailable();
    throw error;
  } finally {
    inFlight.delete(entry);
  }
}

/** postgres.js's and the network's ways of saying the database is not there right now. */
const unreachableCodes = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);

function isUnreachable(error: unknown): boolean {
  if (
    error instanceof Deno.errors.ConnectionRefused || error instanceof Deno.errors.ConnectionReset
  ) {
    return true;
  }
  const code = (error as { code?: unknown })?.code;
  // SQLSTATE class 08: connection exceptions.
  return typeof code === "string" && (unreachableCodes.has(code) || code.startsWith("08"));
}

/**
 * Whether `tag` would close early after `text`: the text holds it, or ends with a start of it that
 * the closing tag completes (`…$arg` + `$arg$`).
 */
function holdsTag(text: string, tag: string): boolean {
  if (text.includes(tag)) return true;
  for (let k = 1; k < tag.length; k++) {
    if (tag.slice(k) === tag.slice(0, tag.length - k) && text.endsWith(tag.slice(0, k))) {
      return true;
    }
  }
  return false;
}

/** The text of a string-like argument (to be dollar-quoted), or null for a bare literal. */
function argumentText(value: SqlArgument): string | null {
  let text: string;
  if (typeof value === "string") text = value;
  else if (value instanceof Date) text = value.toISOString();
  else if (value !== null && typeof value === "object") {
    // jsonb cannot hold U+0000 (Meta and others do send it): it becomes U+FFFD. In JSON text a
    // backslash always starts an escape pair, so an even run of them before `u0000` is literal.
    text = JSON.stringify(value).replace(/(?<!\\)((?:\\\\)*)\\u0000/g, "$1\\ufffd");
  } else return null;
  if (text.includes("\0")) throw new TypeError("SQL arguments cannot contain NUL characters");
  return text;
}

function literal(value: SqlArgument): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  throw new TypeError(`Cannot pass ${typeof value} to SQL`);
}
