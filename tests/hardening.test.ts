/**
 * Hardening (SPEC §13.3, §13.4, §13.11), each written from the attacker's side over HTTP: a leaked
 * access token cannot be renewed for ever, an auto-confirmed Supabase user cannot pre-hijack an
 * address, and a misconfiguration is a clear 503 on every function, never a 401.
 */
import assert from "node:assert/strict";
import { createHandler as createMeHandler } from "../supabase/functions/me/handler.ts";
import { createHandler as createRefreshHandler } from "../supabase/functions/refresh/handler.ts";
import { createHandler as createSignupHandler } from "../supabase/functions/signup-webhook/handler.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { testDeps } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";

dbTest("§13.3 a stolen access token stops renewing once the owner rotates", async () => {
  const deps = testDeps();
  const refresh = createRefreshHandler(deps);
  const owner = await signInForTest(deps);
  const renew = (token: string) => call(refresh, "refresh", { method: "POST", token });

  // The attacker holds the owner's access token and renews it.
  const stolen = await renew(owner.access_token);
  assert.equal(stolen.status, 200);
  // The owner refreshes as usual: a new refresh generation.
  deps.clock.advanceSeconds(60);
  const rotated = await call(refresh, "refresh", { body: { refresh_token: owner.refresh_token } });
  assert.equal(rotated.status, 200);
  for (const token of [owner.access_token, stolen.body.access_token]) {
    const res = await renew(token);
    assert.equal(res.status, 401);
    assert.equal(res.body.code, "UNAUTHORIZED");
  }
  // The owner's own token of the current generation still renews.
  assert.equal((await renew(rotated.body.access_token)).status, 200);
});

dbTest("§13.3 no bearer renewal later than 24 h after the last sign-in or rotation", async () => {
  const deps = testDeps({ env: { ACCESS_TOKEN_TTL_SECONDS: String(2 * 86_400) } });
  const refresh = createRefreshHandler(deps);
  const session = await signInForTest(deps);
  let token = session.access_token;
  for (const hour of [11, 22]) {
    deps.clock.advanceSeconds(11 * 3600);
    const renewed = await call(refresh, "refresh", { method: "POST", token });
    assert.equal(renewed.status, 200, `hour ${hour}`);
    token = renewed.body.access_token;
  }
  deps.clock.advanceSeconds(2 * 3600 + 1);
  const refused = await call(refresh, "refresh", { method: "POST", token });
  assert.equal(refused.status, 401);
  // The refresh token itself still works, and renews the window.
  const rotated = await call(refresh, "refresh", {
    body: { refresh_token: session.refresh_token },
  });
  assert.equal(rotated.status, 200);
  assert.equal(
    (await call(refresh, "refresh", { method: "POST", token: rotated.body.access_token })).status,
    200,
  );
});

dbTest(
  "§13.4 with SUPABASE_EMAIL_CONFIRMATION=off an auto-confirmed user takes nothing",
  async () => {
    const token = `hardening-webhook-token-${crypto.randomUUID()}`;
    const env = { SIGNUP_WEBHOOK_TOKEN: token, SUPABASE_EMAIL_CONFIRMATION: "off" };
    const deps = testDeps({ env });
    const target = uniqueEmail("target");
    // The target's admin invitation to a workspace.
    const [workspace] =
      await testSql()`insert into identity.workspace (name) values ('Corp') returning id`;
    await testSql()`
    insert into identity.invitation (email, workspace_id, role, expires_at)
    values (${target}, ${workspace.id}, 'admin', now() + interval '7 days')`;

    // The attacker signs up as target@… on a project that confirms emails without asking.
    const [attacker] = await testSql()`
    insert into auth.users (email, email_confirmed_at) values (${target}, now())
    returning id, email, email_confirmed_at`;
    const delivered = await call(createSignupHandler(deps), "signup-webhook", {
      token,
      body: { type: "INSERT", table: "users", schema: "auth", record: attacker, old_record: null },
    });
    assert.equal(delivered.status, 200);
    const [person] = await testSql()`select email from identity.person where id = ${attacker.id}`;
    assert.equal(person.email, null, "the unproven email is not put on the person");
    const taken = await testSql()`
    select 1 from identity.membership where workspace_id = ${workspace.id}`;
    assert.equal(taken.length, 0, "the invitation is not accepted");

    // The target's own OTP sign-in lands on a person of their own, who accepts the invitation.
    const own = await signInForTest(testDeps(), { email: target });
    assert.notEqual(own.person.id, attacker.id);
    const [membership] = await testSql()`
    select role from identity.membership
    where workspace_id = ${workspace.id} and person_id = ${own.person.id}`;
    assert.equal(membership?.role, "admin");
  },
);

dbTest(
  "§13.11 a malformed core variable is 503 NOT_CONFIGURED naming it, on every function",
  async () => {
    const folders: string[] = [];
    for await (const entry of Deno.readDir(new URL("../supabase/functions/", import.meta.url))) {
      if (entry.isDirectory && !entry.name.startsWith("_")) folders.push(entry.name);
    }
    const cases = [
      ["JWT_SECRET", "tooshort"],
      ["ACCESS_TOKEN_TTL_SECONDS", "abc"],
      ["SIGNUP_MODE", "closed"],
    ];
    for (const [variable, value] of cases) {
      const deps = testDeps({ env: { [variable]: value } });
      for (const name of folders) {
        const { createHandler } = await import(`../supabase/functions/${name}/handler.ts`);
        const res = await call(createHandler(deps), name, { method: "POST" });
        assert.equal(res.status === 405 ? 503 : res.status, 503, `${name} with ${variable}`);
        if (res.status === 405) continue; // the method check comes first
        assert.equal(res.body.code, "NOT_CONFIGURED", name);
        assert.match(res.body.message, new RegExp(variable), name);
        assert.ok(!res.body.message.includes(value), name);
      }
    }
    // And `me` with a valid-looking token is never a 401 for it.
    const me = await call(createMeHandler(testDeps({ env: { JWT_SECRET: "tooshort" } })), "me", {
      token: "x.y.z",
    });
    assert.equal(me.status, 503);
  },
);

Deno.test("§13.11 npm run dev refuses a malformed variable or a port in use in one line", async () => {
  const dev = async (env: Record<string, string>) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["task", "dev"],
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", ...env },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000), // a dev server that starts would run for ever
    }).output();
    return { code: output.code, stderr: new TextDecoder().decode(output.stderr).trim() };
  };
  const malformed = await dev({ JWT_SECRET: "tooshort", PORT: "0" });
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr.split("\n").at(-1)!, /^Cannot start: JWT_SECRET is malformed/);
  assert.ok(!malformed.stderr.includes("tooshort"));

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = String((listener.addr as Deno.NetAddr).port);
    const busy = await dev({ PORT: port });
    assert.equal(busy.code, 1);
    assert.match(
      busy.stderr.split("\n").at(-1)!,
      new RegExp(`^Cannot start: PORT ${port} is in use`),
    );
  } finally {
    listener.close();
  }
});
