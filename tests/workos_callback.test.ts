/**
 * workos-callback: the state (forged, tampered, expired, replayed, another deployment's), the code
 * exchange over the real SDK against the WorkOS emulator, person linking, and the error redirects
 * that write nothing. Rows are counted before and after every refusal.
 */
import { encodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { createStateSealer, maxStateLength } from "../supabase/functions/_shared/state.ts";
import { createHandler as createCallbackHandler } from "../supabase/functions/workos-callback/handler.ts";
import { createHandler as createLoginHandler } from "../supabase/functions/workos-login/handler.ts";
import { dbTest, testSql, uniqueEmail } from "./support/db.ts";
import { TestClock, testDeps } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { signInForTest } from "./support/sessions.ts";
import {
  callbackPath,
  cookiePassword,
  countRows,
  fragmentOf,
  withWorkos,
  workosEnv,
} from "./support/workos.ts";

const tokenFields = [
  "access_token",
  "expires_at",
  "expires_in",
  "person_id",
  "refresh_token",
  "token_type",
];

/** Replaces one query parameter of a callback path. */
function withParam(path: string, name: string, value: string): string {
  const [fn, query] = path.split("?");
  const params = new URLSearchParams(query);
  params.set(name, value);
  return `${fn}?${params}`;
}

/** The state with one byte of its sealed bytes flipped, re-encoded. */
function flipOneByte(state: string, index: number): string {
  const bytes = Uint8Array.from(
    atob(state.replaceAll("-", "+").replaceAll("_", "/")),
    (c) => c.charCodeAt(0),
  );
  bytes[index] ^= 0x01;
  return encodeBase64Url(bytes);
}

async function personByEmail(email: string) {
  const [person] = await testSql()`
    select id, email, workos_user_id, stytch_user_id, display_name
    from identity.person where email = ${email}`;
  return person;
}

dbTest(
  "workos-callback signs in and redirects to return_to with the tokens in the fragment",
  async () => {
    await withWorkos(async ({ deps, signIn }) => {
      const email = uniqueEmail("ada");
      const before = await countRows();
      const res = await signIn({
        returnTo: "/dash?x=1",
        user: { email, firstName: "Ada", lastName: "Lovelace" },
      });
      assert.equal(res.status, 302);
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.ok(res.headers.get("x-request-id"));
      const { base, params } = fragmentOf(res.headers.get("location"));
      assert.equal(base, "https://app.test/dash?x=1");
      assert.deepEqual(Object.keys(params).sort(), tokenFields);
      assert.equal(params.token_type, "bearer");
      assert.equal(params.expires_in, "3600");
      assert.equal(Number(params.expires_at), Math.floor(deps.now().getTime() / 1000) + 3600);

      assert.deepEqual(await countRows(), {
        persons: before.persons + 1,
        sessions: before.sessions + 1,
      });
      const person = await personByEmail(email);
      assert.equal(person.id, params.person_id);
      assert.match(person.workos_user_id, /^user_[0-9A-Z]{26}$/);
      assert.equal(person.display_name, "Ada Lovelace");
      const claims = decodeJwt(params.access_token);
      assert.equal(claims.sub, person.id);
      const [session] = await testSql()`
      select provider, amr_method, workos_session_id, revoked_at from identity.session
      where id = ${claims.session_id as string} and person_id = ${person.id}`;
      assert.equal(session.provider, "workos");
      assert.equal(session.amr_method, "sso/oauth");
      assert.match(session.workos_session_id, /^session_[0-9A-Z]{26}$/);
      assert.equal(session.revoked_at, null);
    });
  },
);

dbTest("workos-callback redirects to an app deep link and an allowed console URL", async () => {
  await withWorkos(async ({ signIn }) => {
    for (const returnTo of ["myapp://auth/cb", "https://console.test/app?tab=1"]) {
      const res = await signIn({ returnTo });
      assert.equal(res.status, 302);
      const { base, params } = fragmentOf(res.headers.get("location"));
      assert.equal(base, returnTo);
      assert.deepEqual(Object.keys(params).sort(), tokenFields);
    }
  });
});

dbTest(
  "workos-callback signs the same WorkOS user into the same person, in a new session",
  async () => {
    await withWorkos(async ({ signIn }) => {
      const email = uniqueEmail();
      const first = fragmentOf((await signIn({ user: { email } })).headers.get("location"));
      const before = await countRows();
      const second = fragmentOf((await signIn({ user: { email } })).headers.get("location"));
      assert.equal(second.params.person_id, first.params.person_id);
      assert.notEqual(
        decodeJwt(second.params.access_token).session_id,
        decodeJwt(first.params.access_token).session_id,
      );
      assert.deepEqual(await countRows(), { ...before, sessions: before.sessions + 1 });
    });
  },
);

dbTest(
  "workos-callback refuses a replayed state with 400 INVALID_STATE and writes nothing",
  async () => {
    await withWorkos(async ({ emulator, callback, authorizeUrl, approve }) => {
      const path = await approve(await authorizeUrl("/"));
      assert.equal((await call(callback, path)).status, 302);
      const before = await countRows();
      const authenticateHits = emulator.hits.authenticate;

      const replay = await call(callback, path);
      assert.equal(replay.status, 400);
      assert.equal(replay.body.code, "INVALID_STATE");
      assert.equal(replay.headers.get("location"), null);
      assert.equal(replay.headers.get("cache-control"), "no-store");
      assert.deepEqual(await countRows(), before);
      assert.equal(
        emulator.hits.authenticate,
        authenticateHits,
        "WorkOS is not called for a replay",
      );
    });
  },
);

dbTest("workos-callback consumes a state once when two callbacks race with it", async () => {
  await withWorkos(async ({ callback, authorizeUrl, approve }) => {
    const path = await approve(await authorizeUrl("/"));
    const before = await countRows();
    const answers = await Promise.all([call(callback, path), call(callback, path)]);
    assert.deepEqual(answers.map((res) => res.status).sort(), [302, 400]);
    assert.equal(answers.find((res) => res.status === 400)?.body.code, "INVALID_STATE");
    assert.deepEqual(await countRows(), {
      persons: before.persons + 1,
      sessions: before.sessions + 1,
    });
  });
});

dbTest("workos-callback refuses a state with one byte flipped and writes nothing", async () => {
  await withWorkos(async ({ emulator, callback, authorizeUrl, approve }) => {
    const path = await approve(await authorizeUrl("/"));
    const state = new URLSearchParams(path.split("?")[1]).get("state")!;
    const before = await countRows();
    for (const index of [0, 5, 20, 40]) {
      const res = await call(callback, withParam(path, "state", flipOneByte(state, index)));
      assert.equal(res.status, 400, `byte ${index}`);
      assert.equal(res.body.code, "INVALID_STATE");
    }
    assert.deepEqual(await countRows(), before);
    assert.equal(emulator.hits.authenticate, 0);
    // A forgery does not spend the genuine state.
    assert.equal((await call(callback, path)).status, 302);
  });
});

dbTest("workos-callback refuses a missing, malformed or oversized state", async () => {
  await withWorkos(async ({ emulator, callback }) => {
    const before = await countRows();
    for (
      const path of [
        "workos-callback?code=abc",
        "workos-callback?code=abc&state=",
        "workos-callback?code=abc&state=not-a-state",
        "workos-callback?code=abc&state=%00%01",
        `workos-callback?code=abc&state=${"A".repeat(maxStateLength + 4)}`,
        "workos-callback",
      ]
    ) {
      const res = await call(callback, path);
      assert.equal(res.status, 400, path);
      assert.equal(res.body.code, "INVALID_STATE");
    }
    assert.deepEqual(await countRows(), before);
    assert.equal(emulator.hits.authenticate, 0);
  });
});

dbTest("workos-callback refuses a state older than 10 minutes and writes nothing", async () => {
  const clock = new TestClock();
  await withWorkos(async ({ emulator, callback, authorizeUrl, approve }) => {
    const path = await approve(await authorizeUrl("/"));
    clock.advanceSeconds(10 * 60);
    const before = await countRows();
    const res = await call(callback, path);
    assert.equal(res.status, 400);
    assert.equal(res.body.code, "INVALID_STATE");
    assert.deepEqual(await countRows(), before);
    assert.equal(emulator.hits.authenticate, 0);
  }, { clock });
});

dbTest("workos-callback accepts a state just under 10 minutes old", async () => {
  const clock = new TestClock();
  await withWorkos(async ({ callback, authorizeUrl, approve }) => {
    const path = await approve(await authorizeUrl("/"));
    clock.advanceSeconds(10 * 60 - 1);
    assert.equal((await call(callback, path)).status, 302);
  }, { clock });
});

dbTest(
  "workos-callback refuses a state sealed with another deployment's cookie password",
  async () => {
    await withWorkos(async ({ emulator, deps, callback, approve }) => {
      const otherDeps = testDeps({
        env: workosEnv(emulator, {
          WORKOS_COOKIE_PASSWORD: "another-deployments-cookie-password!!",
        }),
        clock: deps.clock,
      });
      const otherLogin = createLoginHandler(otherDeps);
      const url = new URL((await call(otherLogin, "workos-login?return_to=%2F")).body.url);
      const path = await approve(url);
      const before = await countRows();
      const res = await call(callback, path);
      assert.equal(res.status, 400);
      assert.equal(res.body.code, "INVALID_STATE");
      assert.deepEqual(await countRows(), before);
      assert.equal(emulator.hits.authenticate, 0);
    });
  },
);

dbTest("workos-callback redirects ACCESS_DENIED when the person cancels at WorkOS", async () => {
  await withWorkos(async ({ emulator, callback, authorizeUrl }) => {
    const url = await authorizeUrl("/dash");
    const answer = await fetch(url, {
      method: "POST",
      body: new URLSearchParams({ decision: "deny" }),
      redirect: "manual",
    });
    await answer.body?.cancel();
    const before = await countRows();
    const res = await call(callback, callbackPath(new URL(answer.headers.get("location")!)));
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const { base, params } = fragmentOf(res.headers.get("location"));
    assert.equal(base, "https://app.test/dash");
    assert.equal(params.error, "ACCESS_DENIED");
    assert.ok(params.error_description);
    assert.equal(params.access_token, undefined);
    assert.deepEqual(await countRows(), before);
    assert.equal(emulator.hits.authenticate, 0);
  });
});

dbTest(
  "workos-callback redirects PROVIDER_ERROR for another WorkOS error, without its text",
  async () => {
    await withWorkos(async ({ callback, authorizeUrl, approve }) => {
      const path = await approve(await authorizeUrl("/"));
      const state = new URLSearchParams(path.split("?")[1]).get("state")!;
      const before = await countRows();
      const res = await call(
        callback,
        `workos-callback?${new URLSearchParams({
          error: "server_error",
          error_description: "<script>alert(1)</script> visit evil.com",
          state,
        })}`,
      );
      assert.equal(res.status, 302);
      const { params } = fragmentOf(res.headers.get("location"));
      assert.equal(params.error, "PROVIDER_ERROR");
      assert.ok(!params.error_description.includes("evil"));
      assert.deepEqual(await countRows(), before);
    });
  },
);

dbTest(
  "workos-callback redirects INVALID_CODE when WorkOS refuses the code, writing nothing",
  async () => {
    await withWorkos(async ({ emulator, callback, authorizeUrl, approve }) => {
      const path = await approve(await authorizeUrl("/"));
      const before = await countRows();
      const started = Date.now();
      const res = await call(callback, withParam(path, "code", "not-the-code"));
      assert.ok(Date.now() - started < 10_000);
      assert.equal(res.status, 302);
      const { base, params } = fragmentOf(res.headers.get("location"));
      assert.equal(base, "https://app.test/");
      assert.equal(params.error, "INVALID_CODE");
      assert.ok(params.error_description);
      assert.deepEqual(await countRows(), before);
      assert.equal(emulator.hits.authenticate, 1);
    });
  },
);

dbTest(
  "workos-callback redirects PROVIDER_ERROR when WorkOS answers 500, writing nothing",
  async () => {
    await withWorkos(async ({ emulator, callback, authorizeUrl, approve }) => {
      const path = await approve(await authorizeUrl("/"));
      emulator.failWith = "error";
      const before = await countRows();
      const res = await call(callback, path);
      assert.equal(res.status, 302);
      assert.equal(fragmentOf(res.headers.get("location")).params.error, "PROVIDER_ERROR");
      assert.deepEqual(await countRows(), before);
    });
  },
);

dbTest("workos-callback redirects PROVIDER_ERROR at once when WorkOS is unreachable", async () => {
  await withWorkos(async ({ emulator, callback, authorizeUrl, approve }) => {
    const path = await approve(await authorizeUrl("/"));
    await emulator.close();
    const before = await countRows();
    const started = Date.now();
    const res = await call(callback, path);
    assert.ok(Date.now() - started < 2_000);
    assert.equal(fragmentOf(res.headers.get("location")).params.error, "PROVIDER_ERROR");
    assert.deepEqual(await countRows(), before);
  });
});

dbTest(
  "workos-callback redirects PROVIDER_ERROR within 10 s when WorkOS hangs (default bound)",
  async () => {
    await withWorkos(async ({ emulator, callback, authorizeUrl, approve }) => {
      const path = await approve(await authorizeUrl("/"));
      emulator.failWith = "hang";
      const before = await countRows();
      const started = Date.now();
      const res = await call(callback, path);
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
      assert.equal(res.status, 302);
      assert.equal(fragmentOf(res.headers.get("location")).params.error, "PROVIDER_ERROR");
      assert.deepEqual(await countRows(), before);
    });
  },
);

dbTest(
  "workos-callback redirects PROVIDER_ERROR when WorkOS's JWKS hangs, writing nothing",
  async () => {
    await withWorkos(async ({ emulator, callback, authorizeUrl, approve }) => {
      const path = await approve(await authorizeUrl("/"));
      emulator.failWith = "hang";
      emulator.failEndpoints = ["jwks"];
      const before = await countRows();
      const started = Date.now();
      const res = await call(callback, path);
      assert.ok(Date.now() - started < 2_000);
      assert.equal(fragmentOf(res.headers.get("location")).params.error, "PROVIDER_ERROR");
      assert.deepEqual(await countRows(), before);
      assert.equal(emulator.hits.jwks, 1);
    }, { workos: { timeoutMs: 500 } });
  },
);

dbTest(
  "workos-callback links a person who signed in with Stytch to WorkOS by verified email",
  async () => {
    await withWorkos(async ({ deps, signIn }) => {
      const email = uniqueEmail("linked");
      const stytch = await signInForTest(deps, { provider: "stytch", email });
      const before = await countRows();
      const res = await signIn({ user: { email: email.toUpperCase(), emailVerified: true } });
      assert.equal(res.status, 302);
      const { params } = fragmentOf(res.headers.get("location"));
      assert.equal(params.person_id, stytch.person.id);
      assert.deepEqual(await countRows(), { ...before, sessions: before.sessions + 1 });
      const person = await personByEmail(email);
      assert.ok(person.stytch_user_id);
      assert.ok(person.workos_user_id);
      const appMetadata = decodeJwt(params.access_token).app_metadata as Record<string, unknown>;
      assert.equal(appMetadata.provider, "workos");
      assert.deepEqual(appMetadata.providers, ["stytch", "workos"]);
    });
  },
);

dbTest(
  "workos-callback refuses an unverified email of an existing person: EMAIL_NOT_VERIFIED",
  async () => {
    await withWorkos(async ({ deps, signIn }) => {
      const email = uniqueEmail("unverified");
      await signInForTest(deps, { provider: "stytch", email });
      const before = await countRows();
      const res = await signIn({ returnTo: "/dash", user: { email, emailVerified: false } });
      assert.equal(res.status, 302);
      const { base, params } = fragmentOf(res.headers.get("location"));
      assert.equal(base, "https://app.test/dash");
      assert.equal(params.error, "EMAIL_NOT_VERIFIED");
      assert.ok(params.error_description);
      assert.equal(params.access_token, undefined);
      assert.deepEqual(await countRows(), before);
      assert.equal((await personByEmail(email)).workos_user_id, null);
    });
  },
);

dbTest("workos-callback refuses a new person in invite mode: SIGNUP_DISABLED", async () => {
  await withWorkos(async ({ signIn }) => {
    const before = await countRows();
    const res = await signIn();
    assert.equal(fragmentOf(res.headers.get("location")).params.error, "SIGNUP_DISABLED");
    assert.deepEqual(await countRows(), before);
  }, { env: { SIGNUP_MODE: "invite" } });
});

dbTest(
  "workos-callback refuses an email linked to another WorkOS user: IDENTITY_CONFLICT",
  async () => {
    await withWorkos(async ({ deps, signIn }) => {
      const email = uniqueEmail("conflict");
      await signInForTest(deps, { provider: "workos", email, providerUserId: "user_SOMEONEELSE" });
      const before = await countRows();
      const res = await signIn({ user: { email } });
      assert.equal(fragmentOf(res.headers.get("location")).params.error, "IDENTITY_CONFLICT");
      assert.deepEqual(await countRows(), before);
      assert.equal((await personByEmail(email)).workos_user_id, "user_SOMEONEELSE");
    });
  },
);

dbTest("workos-callback fetches WorkOS's JWKS once for many callbacks", async () => {
  await withWorkos(async ({ emulator, signIn }) => {
    for (let i = 0; i < 5; i++) assert.equal((await signIn()).status, 302);
    assert.equal(emulator.hits.authenticate, 5);
    assert.equal(emulator.hits.jwks, 1);
  });
});

dbTest("workos-callback answers only GET", async () => {
  await withWorkos(async ({ callback }) => {
    const res = await call(callback, "workos-callback", { method: "POST", body: {} });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET");
  });
});

dbTest("workos-callback without the core configuration answers 503 NOT_CONFIGURED", async () => {
  await withWorkos(async ({ emulator }) => {
    const deps = testDeps({ env: workosEnv(emulator, { JWT_SECRET: "" }) });
    const res = await call(createCallbackHandler(deps), "workos-callback?code=c&state=s");
    assert.equal(res.status, 503);
    assert.equal(res.body.code, "NOT_CONFIGURED");
  });
});

dbTest("workos-callback never logs the code, state, tokens, fragment or email", async () => {
  const secrets: string[] = [];
  let lines: string[] = [];
  await withWorkos(async ({ deps, callback, authorizeUrl, approve }) => {
    const email = uniqueEmail("logged");
    const path = await approve(await authorizeUrl("/dash?x=1"), { email });
    const query = new URLSearchParams(path.split("?")[1]);
    const location = (await call(callback, path)).headers.get("location")!;
    const { params } = fragmentOf(location);
    await call(callback, path); // replayed: 400 INVALID_STATE

    const refusedCode = `refused-${crypto.randomUUID()}`;
    const second = new URLSearchParams(
      (await approve(await authorizeUrl("/dash"), { email })).split("?")[1],
    );
    const errorLocation = (await call(
      callback,
      `workos-callback?${new URLSearchParams({ code: refusedCode, state: second.get("state")! })}`,
    )).headers.get("location")!;

    secrets.push(
      query.get("code")!,
      query.get("state")!,
      second.get("state")!,
      refusedCode,
      email,
      email.split("@")[0],
      params.access_token,
      params.refresh_token,
      location.split("#")[1],
      errorLocation.split("#")[1],
    );
    lines = deps.logs.map((entry) => JSON.stringify(entry));
  });
  const events = lines.map((line) => JSON.parse(line).event);
  assert.ok(events.includes("workos_sign_in"));
  assert.ok(events.includes("workos_sign_in_failed"));
  assert.ok(
    lines.some((line) => line.includes('"fn":"workos-callback"') && line.includes('"status":400')),
  );
  for (const line of lines) {
    for (const secret of secrets) assert.ok(!line.includes(secret), `a log line holds ${secret}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Login CSRF (SPEC §13.12): a redirect-mode state only signs in the browser that started it
// ---------------------------------------------------------------------------------------------

const clearedCookie =
  "workos-login=; Path=/functions/v1/workos-callback; Max-Age=0; HttpOnly; SameSite=Lax";

dbTest(
  "workos-callback refuses an attacker's redirect-mode sign-in in a browser without its cookie",
  async () => {
    await withWorkos(async ({ emulator, callback, startInBrowser, approve }) => {
      // The attacker starts a sign-in in their own browser and stops at the callback URL...
      const attacker = await startInBrowser("/");
      const path = await approve(attacker.authorizeUrl, { email: uniqueEmail("attacker") });
      // ...and sends the victim's browser there: with no cookie, a cookie of the victim's own
      // sign-in, another cookie, or the right value under another name.
      const victim = await startInBrowser("/");
      const value = attacker.cookie.split("=")[1];
      const before = await countRows();
      const authenticateHits = emulator.hits.authenticate;
      for (
        const cookie of [
          undefined,
          victim.cookie,
          "session=abc; theme=dark",
          `workos-login-x=${value}`,
          `__Secure-workos-login=${value}`,
          `workos-login=${value}x`,
          "workos-login=",
        ]
      ) {
        const res = await call(callback, path, { headers: cookie ? { cookie } : {} });
        assert.equal(res.status, 400, String(cookie));
        assert.equal(res.body.code, "INVALID_STATE");
        assert.equal(res.headers.get("location"), null);
        // Not the victim's cookie to clear: an attacker must not end their sign-in either.
        assert.equal(res.headers.get("set-cookie"), null);
      }
      assert.deepEqual(await countRows(), before);
      assert.equal(emulator.hits.authenticate, authenticateHits, "WorkOS is not called");

      // The refusals did not spend the state: in the browser that started it, it still works.
      const own = await call(callback, path, { headers: { cookie: attacker.cookie } });
      assert.equal(own.status, 302);
    });
  },
);

dbTest(
  "workos-callback signs in a redirect-mode state with its cookie and clears the cookie",
  async () => {
    await withWorkos(async ({ callback, startInBrowser, approve }) => {
      const email = uniqueEmail("browser");
      const start = await startInBrowser("/dash");
      const path = await approve(start.authorizeUrl, { email });
      const before = await countRows();
      // Among other cookies, as a browser sends them.
      const res = await call(callback, path, {
        headers: { cookie: `theme=dark; ${start.cookie}; lang=en` },
      });
      assert.equal(res.status, 302);
      const { base, params } = fragmentOf(res.headers.get("location"));
      assert.equal(base, "https://app.test/dash");
      assert.deepEqual(Object.keys(params).sort(), tokenFields);
      assert.equal(res.headers.get("set-cookie"), clearedCookie);
      assert.deepEqual(await countRows(), {
        persons: before.persons + 1,
        sessions: before.sessions + 1,
      });

      // Replayed in the same browser: refused, and the cookie is cleared again.
      const replay = await call(callback, path, { headers: { cookie: start.cookie } });
      assert.equal(replay.status, 400);
      assert.equal(replay.body.code, "INVALID_STATE");
      assert.equal(replay.headers.get("set-cookie"), clearedCookie);
    });
  },
);

dbTest("workos-callback clears the cookie on an error redirect too", async () => {
  await withWorkos(async ({ emulator, callback, startInBrowser }) => {
    const start = await startInBrowser("/");
    const denied = new URL(
      await emulator.signIn(start.authorizeUrl.href, {
        email: uniqueEmail(),
        emailVerified: true,
      }),
    );
    denied.searchParams.delete("code");
    denied.searchParams.set("error", "access_denied");
    const res = await call(callback, callbackPath(denied), { headers: { cookie: start.cookie } });
    assert.equal(res.status, 302);
    assert.equal(fragmentOf(res.headers.get("location")).params.error, "ACCESS_DENIED");
    assert.equal(res.headers.get("set-cookie"), clearedCookie);
  });
});

dbTest("workos-callback takes a JSON-mode state without any cookie and sets none", async () => {
  await withWorkos(async ({ signIn }) => {
    const res = await signIn({ returnTo: "/" });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("set-cookie"), null);
  });
});

// ---------------------------------------------------------------------------------------------
// Provider profiles (SPEC §13.8): nothing WorkOS says about a person fails a sign-in
// ---------------------------------------------------------------------------------------------

dbTest(
  "workos-callback strips control characters from WorkOS names and cuts them to 200 characters",
  async () => {
    await withWorkos(async ({ signIn }) => {
      const cases: [{ firstName?: string; lastName?: string }, string | null][] = [
        [{ firstName: "Ada\u0000", lastName: "Love\u0000lace" }, "Ada Lovelace"],
        [
          { firstName: "\u0007Ada\u001b[31m", lastName: "\u007fLovelace\u0085" },
          "Ada[31m Lovelace",
        ],
        [{ firstName: "\u0000\u0000" }, null],
        [{ firstName: "a".repeat(300) }, "a".repeat(200)],
        [{ firstName: "😀".repeat(150), lastName: "b" }, "😀".repeat(150) + " b"],
        [{ firstName: "😀".repeat(250) }, "😀".repeat(200)],
        [{ firstName: "a".repeat(199), lastName: "😀😀" }, "a".repeat(199)],
      ];
      for (const [names, expected] of cases) {
        const email = uniqueEmail();
        const res = await signIn({ user: { email, ...names } });
        assert.equal(res.status, 302, JSON.stringify(names));
        const { params } = fragmentOf(res.headers.get("location"));
        assert.equal(params.error, undefined, `${JSON.stringify(names)}: ${params.error}`);
        const person = await personByEmail(email);
        assert.equal(person.display_name, expected, JSON.stringify(names));
      }
    });
  },
);

dbTest(
  "workos-callback treats an email over 254 characters as no email and still signs in",
  async () => {
    await withWorkos(async ({ signIn }) => {
      const email = `${"a".repeat(60)}@${"b".repeat(190)}.example.test`; // 264 characters
      const first = await signIn({ user: { email, emailVerified: true, firstName: "Long" } });
      assert.equal(first.status, 302);
      const { params } = fragmentOf(first.headers.get("location"));
      assert.equal(params.error, undefined, params.error);
      const [person] = await testSql()`
        select email, workos_user_id, display_name from identity.person
        where id = ${params.person_id}`;
      assert.equal(person.email, null);
      assert.equal(person.display_name, "Long");
      // The same WorkOS user comes back to the same person, by id.
      const again = fragmentOf((await signIn({ user: { email } })).headers.get("location"));
      assert.equal(again.params.person_id, params.person_id);
    });
  },
);

dbTest(
  "workos-callback signs in whatever types or values WorkOS sends in a profile, never INTERNAL",
  async () => {
    await withWorkos(async ({ emulator, signIn }) => {
      const overrides: Record<string, unknown>[] = [
        { email: "not-an-email" },
        { email: "two@@example.test" },
        { email: "a b@example.test" },
        { email: "nul\u0000@example.test" },
        { email: "lone\ud83d@example.test" },
        { email: "" },
        { email: null },
        { email: 42 },
        { email: ["a@example.test"] },
        { email: { address: "a@example.test" } },
        { email_verified: "yes" },
        { first_name: 42, last_name: { a: 1 } },
        { first_name: ["Ada"], last_name: true },
        { first_name: "\ud83d", last_name: "\udc00x" },
        { first_name: "x".repeat(10_000), last_name: "y".repeat(10_000) },
        { first_name: "\u202egro.live" },
      ];
      for (const fields of overrides) {
        emulator.userOverrides = fields;
        const email = uniqueEmail();
        const res = await signIn({ user: { email, firstName: "Ada" } });
        assert.equal(res.status, 302, JSON.stringify(fields));
        const { params } = fragmentOf(res.headers.get("location"));
        assert.equal(params.error, undefined, `${JSON.stringify(fields)}: ${params.error}`);
        const [person] = await testSql()`
          select email, display_name from identity.person where id = ${params.person_id}`;
        if ("email" in fields) assert.equal(person.email, null, JSON.stringify(fields));
        assert.ok(
          person.display_name === null || [...person.display_name].length <= 200,
          JSON.stringify(fields),
        );
      }
      // An email WorkOS sends with spaces around it is still an email.
      emulator.userOverrides = null;
      const email = uniqueEmail("spaced");
      emulator.userOverrides = { email: ` ${email} ` };
      const res = await signIn({ user: { email } });
      const { params } = fragmentOf(res.headers.get("location"));
      const [person] = await testSql()`
        select email from identity.person where id = ${params.person_id}`;
      assert.equal(person.email, email);
    });
  },
);

dbTest("workos-callback answers PROVIDER_ERROR for a WorkOS user id that is no id", async () => {
  await withWorkos(async ({ emulator, signIn }) => {
    for (const id of [42, null, "", "user\u0000x", "x".repeat(300), "user 01"]) {
      emulator.userOverrides = { id };
      const before = await countRows();
      const res = await signIn();
      assert.equal(res.status, 302, JSON.stringify(id));
      assert.equal(fragmentOf(res.headers.get("location")).params.error, "PROVIDER_ERROR");
      assert.deepEqual(await countRows(), before);
    }
  });
});

/** The SQLSTATE of `statement` run as `role` (rolled back), or null when it succeeds. */
async function errorCodeAs(role: "anon" | "authenticated", statement: string) {
  let code: string | null = null;
  await testSql().begin(async (tx) => {
    await tx.unsafe(`set local role ${role}`);
    try {
      await tx.unsafe(statement);
    } catch (error) {
      code = (error as { code?: string }).code ?? "unknown";
    }
    throw new Error("rollback");
  }).catch(() => {});
  return code;
}

dbTest(
  "consumed WorkOS states are closed to anon and authenticated (RLS on, no grants)",
  async () => {
    const [{ rls }] = await testSql()`
    select relrowsecurity as rls from pg_class
    where oid = 'identity.consumed_workos_state'::regclass`;
    assert.equal(rls, true);
    for (const role of ["anon", "authenticated"] as const) {
      for (
        const statement of [
          "select * from identity.consumed_workos_state",
          `insert into identity.consumed_workos_state values (gen_random_uuid(), now(), now())`,
          `select identity.consume_workos_state(gen_random_uuid(), now(), now())`,
        ]
      ) {
        assert.equal(await errorCodeAs(role, statement), "42501", `${role}: ${statement}`);
      }
    }
  },
);

// The state codec on its own.

const now = new Date("2026-11-22T10:00:00Z");
const sealer = createStateSealer(cookiePassword);
const input = { returnTo: "https://app.test/dash", codeVerifier: "v".repeat(43) };

Deno.test("createStateSealer() opens what it sealed, with a fresh nonce each time", async () => {
  const a = await sealer.open(await sealer.seal(input, now), now);
  const b = await sealer.open(await sealer.seal(input, now), now);
  assert.equal(a?.returnTo, input.returnTo);
  assert.equal(a?.codeVerifier, input.codeVerifier);
  assert.notEqual(a?.nonce, b?.nonce);
});

Deno.test("createStateSealer().open() returns null for any single changed byte or character", async () => {
  const state = await sealer.seal(input, now);
  const length = atob(state.replaceAll("-", "+").replaceAll("_", "/")).length;
  for (let i = 0; i < length; i++) {
    assert.equal(await sealer.open(flipOneByte(state, i), now), null, `byte ${i}`);
  }
  for (let i = 0; i < state.length; i++) {
    const changed = state.slice(0, i) + (state[i] === "A" ? "B" : "A") + state.slice(i + 1);
    assert.equal(await sealer.open(changed, now), null, `character ${i}`);
  }
  assert.equal(await sealer.open(state.slice(0, -1), now), null);
  assert.equal(await sealer.open(`${state}A`, now), null);
});

Deno.test("createStateSealer().open() returns null at the expiry and for another password", async () => {
  const state = await sealer.seal(input, now);
  assert.ok(await sealer.open(state, new Date(now.getTime() + 599_000)));
  assert.equal(await sealer.open(state, new Date(now.getTime() + 600_000)), null);
  const other = createStateSealer("another-deployments-cookie-password!!");
  assert.equal(await other.open(state, now), null);
});

Deno.test("createStateSealer().open() returns null on poorly formed values", async () => {
  for (const value of ["", "=", "a b", "%%%", "AAAA", "A".repeat(maxStateLength + 1)]) {
    assert.equal(await sealer.open(value, now), null, JSON.stringify(value));
  }
});
