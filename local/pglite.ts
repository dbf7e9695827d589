/**
 * An embedded Postgres (PGlite) behind a loopback socket, for `npm run dev` on a machine without
 * Postgres (kept in a folder, so the dev database survives a restart) and for tests where no server
 * answers (in memory). Local tooling only, never deployed.
 *
 * PGlite is a single backend: its socket server queues the queries of several connections, so a
 * psql session can look in while the dev server runs, but statements of different connections
 * interleave; the functions' own pool therefore keeps one connection (see `embeddedPoolSize`).
 */
import { freePort } from "./free_port.ts";
import { PGlite } from "@electric-sql/pglite";
import { citext } from "@electric-sql/pglite/contrib/citext";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export const embeddedPoolSize = 1;

export interface EmbeddedPostgres {
  url: string;
  close(): Promise<void>;
}

/** Connections the socket server accepts at once: the dev server's, and a few psql sessions. */
const maxConnections = 8;

/**
 * Starts PGlite and serves it on 127.0.0.1 (port 0 picks a free port); in memory unless
 * `dataDir` names a folder to keep it in.
 */
export async function startEmbeddedPostgres(
  options: { port?: number; dataDir?: string } = {},
): Promise<EmbeddedPostgres> {
  const db = await PGlite.create({ dataDir: options.dataDir, extensions: { citext } });
  const chosenPort = options.port || freePort();
  const server = new PGLiteSocketServer({
    db,
    port: chosenPort,
    host: "127.0.0.1",
    maxConnections,
  });
  await server.start();
  return {
    url: `postgres://postgres@127.0.0.1:${chosenPort}/postgres`,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
