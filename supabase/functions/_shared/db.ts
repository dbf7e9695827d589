/**
 * The database client: postgres.js on SUPABASE_DB_URL, the service connection that owns the
 * tables (row-level security protects them from `anon` and `authenticated`, not from it).
 */
import postgres from "postgres";

export type Sql = postgres.Sql;

/**
 * One pool per process. `prepare: false` because Supabase's transaction pooler (port 6543) cannot
 * keep prepared statements across transactions.
 */
export function connectDatabase(url: string, options: { max?: number } = {}): Sql {
  return postgres(url, {
    prepare: false,
    max: options.max ?? 5,
    idle_timeout: 60,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: "platform-auth-functions" },
  });
}
