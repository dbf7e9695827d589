/**
 * A throwaway, migrated database for one run of the tests or the benchmark: a new database on the
 * Postgres at SUPABASE_DB_URL / DATABASE_URL / 127.0.0.1:5432 when one answers, else an embedded
 * PGlite. `drop()` removes it. Local tooling only.
 */
import postgres from "postgres";
import { migrate } from "./migrate.ts";
import { embeddedPoolSize, startEmbeddedPostgres } from "./pglite.ts";

const defaultServerUrl = "postgres://postgres@127.0.0.1:5432/postgres";

export interface ScratchDatabase {
  url: string;
  kind: "postgres" | "pglite";
  /** Connections a pool on it may open (PGlite serves one at a time). */
  poolSize: number;
  drop(): Promise<void>;
}

export async function createScratchDatabase(prefix: string): Promise<ScratchDatabase> {
  const serverUrl = Deno.env.get("SUPABASE_DB_URL") ?? Deno.env.get("DATABASE_URL") ??
    defaultServerUrl;
  const database = await answers(serverUrl)
    ? await createOnServer(serverUrl, prefix)
    : await createEmbedded(serverUrl);
  const sql = postgres(database.url, { prepare: false, max: 1, onnotice: () => {} });
  try {
    await migrate(sql);
  } catch (error) {
    await database.drop();
    throw error;
  } finally {
    await sql.end();
  }
  return database;
}

async function answers(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function createOnServer(serverUrl: string, prefix: string): Promise<ScratchDatabase> {
  const name = `${prefix}_${Date.now()}_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    kind: "postgres",
    poolSize: 10,
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

async function createEmbedded(serverUrl: string): Promise<ScratchDatabase> {
  console.log(`No Postgres answers at ${new URL(serverUrl).host}; using embedded PGlite`);
  const embedded = await startEmbeddedPostgres();
  return { url: embedded.url, kind: "pglite", poolSize: embeddedPoolSize, drop: embedded.close };
}
