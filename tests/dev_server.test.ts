import { freePort } from "../local/free_port.ts";
import assert from "node:assert/strict";
import postgres from "postgres";

/**
 * `npm run dev` on a fresh clone of the committed tree, with no environment at all: it must come
 * up on its own (embedded Postgres, generated secret, emulators) and answer like Supabase would.
 */
Deno.test("npm run dev starts on a fresh clone with no environment, keeps its database, and says what is off", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const clone = await Deno.makeTempDir({ prefix: "platform-auth-clone-" });
  const git = await new Deno.Command("git", { args: ["clone", "--quiet", root, clone] }).output();
  assert.equal(git.code, 0, new TextDecoder().decode(git.stderr));
  await Deno.symlink(`${root}/node_modules`, `${clone}/node_modules`);
  const port = freePort();
  /** `npm run dev`'s task as a newcomer runs it: no environment but PATH, HOME and a port. */
  const start = (args: string[] = []) =>
    new Deno.Command(`${clone}/node_modules/.bin/deno`, {
      args: ["task", "dev", ...args],
      cwd: clone,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "",
        PORT: String(port),
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  const stop = async (child: Deno.ChildProcess) => {
    child.kill("SIGTERM");
    await child.status;
    await child.stderr.cancel();
  };

  try {
    const first = start();
    let psqlUrl = "";
    try {
      const { text, match: [, anonKey] } = await readUntil(
        first.stdout,
        /anon key: (\S+)/,
        120_000,
      );
      const me = await fetch(`http://127.0.0.1:${port}/functions/v1/me`);
      assert.equal(me.status, 401);
      assert.match(me.headers.get("content-type") ?? "", /application\/json/);
      assert.equal((await me.json()).code, "UNAUTHORIZED");

      // The printed anon key is an API key, not a user: `me` itself refuses it.
      const withKey = await fetch(`http://127.0.0.1:${port}/functions/v1/me`, {
        headers: { authorization: `Bearer ${anonKey}` },
      });
      assert.equal((await withKey.json()).message, "Access token is invalid");

      // The summary says which functions answer 503, and nothing is noise.
      assert.match(text, /whatsapp-webhook answers 503 until configured: WHATSAPP_VERIFY_TOKEN/);
      assert.match(text, /signup-webhook answers 503 until configured/);
      assert.doesNotMatch(text, /\[Stytch\] Warning/);

      // The database can be looked into while the server runs, at the printed URL.
      psqlUrl = /psql (\S+)/.exec(text)![1];
      const sql = postgres(psqlUrl, { max: 1, onnotice: () => {} });
      try {
        await sql`insert into identity.workspace (name) values ('kept across restarts')`;
      } finally {
        await sql.end();
      }
    } finally {
      await stop(first);
    }

    // A restart keeps the embedded database.
    const second = start();
    try {
      const { text } = await readUntil(second.stdout, /anon key: /, 120_000);
      const url = /psql (\S+)/.exec(text)![1];
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        const rows =
          await sql`select 1 from identity.workspace where name = 'kept across restarts'`;
        assert.equal(rows.length, 1);
      } finally {
        await sql.end();
      }
    } finally {
      await stop(second);
    }
  } finally {
    await Deno.remove(clone, { recursive: true });
  }
});

/** Reads a stream until `pattern` matches, then keeps draining it in the background. */
async function readUntil(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
  timeoutMs: number,
): Promise<{ text: string; match: RegExpMatchArray }> {
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const match = pattern.exec(text);
    if (match) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      return { text, match };
    }
  }
  throw new Error(`dev server did not start:\n${text}`);
}
