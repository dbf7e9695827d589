/**
 * An embedded Postgres (PGlite, in memory) behind a loopback socket, for `npm run dev` on a machine
 * without Postgres and for tests where no server answers. Local tooling only, never deployed.
 *
 * PGlite is a single backend: its socket server takes one connection at a time, so every pool
 * pointed at it must have `max: 1` (see `embeddedPoolSize`).
 */
import { PGlite } from "@electric-sql/pglite";
import { citext } from "@electric-sql/pglite/contrib/citext";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export const embeddedPoolSize = 1;

export interface EmbeddedPostgres {
  url: string;
  close(): Promise<void>;
}

/** Starts PGlite and serves it on 127.0.0.1 (port 0 picks a free port). */
export async function startEmbeddedPostgres(port = 0): Promise<EmbeddedPostgres> {
  const db = await PGlite.create({ extensions: { citext } });
  const chosenPort = port || freePort();
  const server = new PGLiteSocketServer({ db, port: chosenPort, host: "127.0.0.1" });
  await server.start();
  return {
    url: `postgres://postgres@127.0.0.1:${chosenPort}/postgres`,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
