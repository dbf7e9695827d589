/**
 * A postgres.js pool on a database URL. Functions reach it through `lazyDatabase` (db.ts), which
 * loads this module on the first query; tools and tests open pools with it directly.
 */
import postgres from "postgres";
import { type Sql, sqlDeadlineMs } from "./db.ts";

/**
 * One pool per process. `prepare: false` because Supabase's transaction pooler (port 6543) cannot
 * keep prepared statements across transactions.
 */
export function connectDatabase(url: string, options: { max?: number } = {}): Sql {
  return postgres(url, {
    prepare: false,
    max: options.max ?? 5,
    idle_timeout: 60,
    connect_timeout: sqlDeadlineMs / 1000,
    onnotice: () => {},
    connection: { application_name: "platform-auth-functions" },
  });
}
