/**
 * Where a request's CPU goes: this process (server, client and postgres.js) and the Postgres
 * backends serving this process's pool. On a small machine the two share the same cores, so a
 * ratio alone cannot tell a slow handler from a heavy query; these figures can.
 *
 * Backend CPU is read from /proc (Linux, a local server, a superuser connection); elsewhere, and
 * on the embedded PGlite (which runs inside this process), only the process figure is given.
 */
import process from "node:process";
import type { Sql } from "../supabase/functions/_shared/db.ts";

/** CPU microseconds used so far. */
export interface CpuReading {
  process: number;
  /** Per backend pid; null when backends cannot be observed. */
  backends: Map<number, number> | null;
}

export type CpuMeter = () => Promise<CpuReading>;

/** CPU microseconds spent (between two readings, or per operation). */
export interface CpuTime {
  process: number;
  /** The database backends' share; null when they cannot be observed. */
  database: number | null;
}

/** Linux reports process times in USER_HZ ticks, 100 per second on every mainstream platform. */
const microsecondsPerTick = 10_000;

export function cpuMeter(sql: Sql, database: "postgres" | "pglite"): CpuMeter {
  return async () => {
    const { user, system } = process.cpuUsage();
    return {
      process: user + system,
      backends: database === "postgres" ? await backendTimes(sql) : null,
    };
  };
}

/**
 * Each backend's CPU from /proc/<pid>/stat, read by Postgres itself (a superuser may read server
 * files; Deno would need --allow-all for /proc). Null when Postgres cannot (not Linux, not local,
 * not a superuser).
 */
async function backendTimes(sql: Sql): Promise<Map<number, number> | null> {
  let rows: { pid: number; stat: string | null }[];
  try {
    rows = await sql`
      select pid, pg_read_file('/proc/' || pid || '/stat', 0, 4096, true) as stat
      from pg_stat_activity
      where datname = current_database() and backend_type = 'client backend'`;
  } catch {
    return null;
  }
  const times = new Map<number, number>();
  for (const { pid, stat } of rows) {
    if (stat === null) continue; // the backend has just exited
    // The fields after the command name (in parentheses, it may hold spaces): utime and stime
    // are the 12th and 13th of them.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    times.set(pid, (Number(fields[11]) + Number(fields[12])) * microsecondsPerTick);
  }
  return times;
}

/** CPU used between two readings; backends present in both only (a pool may open or close some). */
export function cpuUsed(before: CpuReading, after: CpuReading): CpuTime {
  let database: number | null = null;
  if (before.backends && after.backends) {
    database = 0;
    for (const [pid, time] of after.backends) {
      const earlier = before.backends.get(pid);
      if (earlier !== undefined) database += time - earlier;
    }
  }
  return { process: after.process - before.process, database };
}
