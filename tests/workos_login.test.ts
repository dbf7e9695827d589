/**
 * workos-login: the AuthKit authorize URL, the sealed state it carries, and return_to validation
 * (open redirects), with the real SDK pointed at the WorkOS emulator.
 */
import { encodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import assert from "node:assert/strict";
import { s256CodeChallenge } from "../supabase/functions/_shared/pkce.ts";
import { resolveReturnTo } from "../supabase/functions/_shared/redirects.ts";
import { createStateSealer } from "../supabase/functions/_shared/state.ts";
import { createHandler as createCallbackHandler } from "../supabase/functions/workos-callback/handler.ts";
import { createHandler as createLoginHandler } from "../supabase/functions/workos-login/handler.ts";
import { startWorkosEmulator } from "../local/emulators/workos.ts";
import { dbTest } from "./support/db.ts";
import { testDeps } from "./support/deps.ts";
import { call } from "./support/http.ts";
import { cookiePassword, redirectUri, withWorkos, workosEnv } from "./support/workos.ts";

const invalidReturnTo = "INVALID_RETURN_TO";

dbTest(
  "workos-login answers the AuthKit URL with provider authkit, S256 and an opaque state",
  async () => {
    await withWorkos(async ({ emulator, login }) => {
      const res = await call(login, "workos-login?return_to=%2Fdash%3Fx%3D1");
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.ok(res.headers.get("x-request-id"));
      const url = new URL(res.body.url);
      assert.equal(url.origin, emulator.url);
      assert.equal(url.pathname, "/user_management/authorize");
      const params = Object.fromEntries(url.searchParams);
      assert.equal(params.provider, "authkit");
      assert.equal(params.client_id, emulator.clientId);
      assert.equal(params.redirect_uri, redirectUri);
      assert.equal(params.response_type, "code");
      assert.equal(params.code_challenge_method, "S256");
      assert.match(params.code_challenge, /^[A-Za-z0-9_-]{43}$/);
      // Opaque: neither return_to nor anything else readable travels in clear.
      assert.match(params.state, /^[A-Za-z0-9_-]+$/);
      assert.ok(!params.state.includes("dash"));
      assert.ok(!atob(params.state.replaceAll("-", "+").replaceAll("_", "/")).includes("dash"));
    });
  },
);

dbTest(
  "workos-login seals return_to, a nonce and the PKCE verifier into the state for 10 minutes",
  async () => {
    await withWorkos(async ({ deps, authorizeUrl }) => {
      const url = await authorizeUrl("/dash?x=1");
      const now = deps.now();
      const state = await createStateSealer(cookiePassword).open(
        url.searchParams.get("state")!,
        now,
      );
      assert.ok(state);
      assert.equal(state.returnTo, "https://app.test/dash?x=1");
      assert.match(state.nonce, /^[0-9a-f-]{36}$/);
      assert.equal(
        await s256CodeChallenge(state.codeVerifier),
        url.searchParams.get("code_challenge"),
      );
      assert.equal(state.expiresAt.getTime(), Math.floor(now.getTime() / 1000) * 1000 + 600_000);
    });
  },
);

dbTest("workos-login gives every sign-in its own state, nonce and verifier", async () => {
  await withWorkos(async ({ deps, authorizeUrl }) => {
    const sealer = createStateSealer(cookiePassword);
    const [a, b] = [await authorizeUrl("/"), await authorizeUrl("/")];
    assert.notEqual(a.searchParams.get("state"), b.searchParams.get("state"));
    assert.notEqual(a.searchParams.get("code_challenge"), b.searchParams.get("code_challenge"));
    const stateA = await sealer.open(a.searchParams.get("state")!, deps.now());
    const stateB = await sealer.open(b.searchParams.get("state")!, deps.now());
    assert.notEqual(stateA?.nonce, stateB?.nonce);
  });
});

dbTest(
  "workos-login accepts paths, URLs under ALLOWED_REDIRECT_URLS and app deep links",
  async () => {
    await withWorkos(async ({ deps, authorizeUrl }) => {
      const sealer = createStateSealer(cookiePassword);
      const accepted: [string | undefined, string][] = [
        [undefined, "https://app.test/"],
        ["", "https://app.test/"],
        ["/", "https://app.test/"],
        ["/dash?x=1", "https://app.test/dash?x=1"],
        ["/dash?next=%2Fsettings", "https://app.test/dash?next=%2Fsettings"],
        ["myapp://auth/cb", "myapp://auth/cb"],
        ["myapp://auth", "myapp://auth"],
        ["https://console.test", "https://console.test/"],
        ["https://console.test/app/x?y=1", "https://console.test/app/x?y=1"],
        ["https://app.test/settings", "https://app.test/settings"],
      ];
      for (const [returnTo, resolved] of accepted) {
        const url = await authorizeUrl(returnTo);
        const state = await sealer.open(url.searchParams.get("state")!, deps.now());
        assert.equal(state?.returnTo, resolved, `return_to ${JSON.stringify(returnTo)}`);
      }
    });
  },
);

const openRedirects = [
  "//evil.com",
  "//evil.com/dash",
  "/\\evil.com",
  "\\\\evil.com",
  "/dash\\..\\..",
  "https://evil.com",
  "https://console.test.evil.com",
  "https://console.test.evil.com/app",
  "https://console.testevil.com",
  "https://console.test@evil.com",
  "https://user:pass@console.test/",
  "http://console.test", // scheme must match exactly
  "https://console.test:8443/", // and the port
  "https://app.test.evil.com/",
  "javascript:alert(1)",
  "JavaScript:alert(1)",
  "javascript://console.test/%0aalert(1)",
  "data:text/html,<script>alert(1)</script>",
  "%2F%2Fevil.com", // sent double-encoded: arrives as the literal %2F%2Fevil.com
  "/%2F%2Fevil.com",
  "/%2fevil.com",
  "/%5Cevil.com",
  "/%2e%2e/%2e%2e/evil",
  "/%25252F%25252Fevil.com",
  "/%0d%0aSet-Cookie:x=1",
  "/dash\r\nSet-Cookie: x=1",
  "/\t/evil.com",
  "/\x00evil",
  "/dash\u2028",
  "/\u202egro.live",
  " /dash",
  "/dash#frag",
  "evil.com",
  "dash",
  "myapp://authx/cb",
  "myapp://evil/cb",
  "otherapp://auth/cb",
  "/" + "a".repeat(4096),
];

dbTest(
  "workos-login refuses every open-redirect return_to with 400 INVALID_RETURN_TO",
  async () => {
    await withWorkos(async ({ login }) => {
      for (const returnTo of openRedirects) {
        const res = await call(
          login,
          `workos-login?${new URLSearchParams({ return_to: returnTo })}`,
        );
        assert.equal(res.status, 400, `return_to ${JSON.stringify(returnTo)}`);
        assert.equal(res.body.code, invalidReturnTo);
        assert.ok(!res.body.message.includes("evil"), "the message never echoes the value");
      }
    });
  },
);

dbTest("workos-login refuses return_to values that decode into open redirects", async () => {
  await withWorkos(async ({ login }) => {
    const rawQueries = [
      "return_to=%2F%2Fevil.com", // decodes to //evil.com
      "return_to=%2F%5Cevil.com", // /\evil.com
      "return_to=%2F%09%2Fevil.com", // a tab the URL parser would drop
      "return_to=javascript%3Aalert(1)",
      "return_to=%2Fdash&return_to=https%3A%2F%2Fevil.com", // two values
    ];
    for (const query of rawQueries) {
      const res = await call(login, `workos-login?${query}`);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.code, invalidReturnTo);
    }
  });
});

Deno.test("resolveReturnTo matches ALLOWED_REDIRECT_URLS paths at a / boundary", () => {
  const policy = { allowedRedirectUrls: ["https://console.test/app", "myapp://auth/cb/"] };
  const verdict = (value: string) => resolveReturnTo(value, policy).ok;
  assert.equal(verdict("https://console.test/app"), true);
  assert.equal(verdict("https://console.test/app/x"), true);
  assert.equal(verdict("https://console.test/apple"), false);
  assert.equal(verdict("https://console.test/"), false);
  assert.equal(verdict("https://console.test/app/../admin"), false); // normalized to /admin first
  assert.equal(verdict("https://CONSOLE.test/app/x"), true);
  assert.equal(verdict("myapp://auth/cb/done"), true);
  assert.equal(verdict("myapp://AUTH/cb/done"), true);
  assert.equal(verdict("myapp://auth/cbx"), false);
  assert.equal(verdict("myapp://auth/"), false);
});

Deno.test("resolveReturnTo needs SITE_URL for a path but not for an allowed URL", () => {
  const policy = { allowedRedirectUrls: ["https://console.test"] };
  assert.deepEqual(resolveReturnTo("/dash", policy), { ok: false, problem: "needs_site_url" });
  assert.deepEqual(resolveReturnTo(null, policy), { ok: false, problem: "needs_site_url" });
  assert.deepEqual(resolveReturnTo("https://console.test/x", policy), {
    ok: true,
    url: "https://console.test/x",
  });
});

Deno.test("resolveReturnTo never allows script schemes, even when listed", () => {
  const policy = { allowedRedirectUrls: ["javascript://console.test", "data:text/html"] };
  assert.equal(resolveReturnTo("javascript://console.test/%0aalert(1)", policy).ok, false);
  assert.equal(resolveReturnTo("data:text/html,hi", policy).ok, false);
});

dbTest(
  "workos-login without SITE_URL answers 503 for a path and accepts an allowed URL",
  async () => {
    await withWorkos(async ({ login }) => {
      const path = await call(login, "workos-login?return_to=%2Fdash");
      assert.equal(path.status, 503);
      assert.equal(path.body.code, "WORKOS_NOT_CONFIGURED");
      assert.match(path.body.message, /SITE_URL/);
      const absolute = await call(login, "workos-login?return_to=myapp%3A%2F%2Fauth%2Fcb");
      assert.equal(absolute.status, 200);
    }, { env: { SITE_URL: "" } });
  },
);

dbTest(
  "workos-login and workos-callback answer 503 WORKOS_NOT_CONFIGURED naming the variable",
  async () => {
    const emulator = await startWorkosEmulator();
    try {
      const cases: [Record<string, string>, RegExp][] = [
        [{ WORKOS_API_KEY: "" }, /WORKOS_API_KEY is missing/],
        [{ WORKOS_CLIENT_ID: "" }, /WORKOS_CLIENT_ID is missing/],
        [{ WORKOS_REDIRECT_URI: "" }, /WORKOS_REDIRECT_URI is missing/],
        [{ WORKOS_COOKIE_PASSWORD: "" }, /WORKOS_COOKIE_PASSWORD is missing/],
        [
          { WORKOS_COOKIE_PASSWORD: "short-cookie-password" },
          /WORKOS_COOKIE_PASSWORD is malformed/,
        ],
        [{ WORKOS_REDIRECT_URI: "not a url" }, /WORKOS_REDIRECT_URI is malformed/],
      ];
      for (const [overrides, message] of cases) {
        const deps = testDeps({ env: workosEnv(emulator, overrides) });
        for (
          const [handler, path] of [
            [createLoginHandler(deps), "workos-login"],
            [createCallbackHandler(deps), "workos-callback?code=c&state=s"],
          ] as const
        ) {
          const res = await call(handler, path);
          assert.equal(res.status, 503, `${path} with ${JSON.stringify(overrides)}`);
          assert.equal(res.body.code, "WORKOS_NOT_CONFIGURED");
          assert.match(res.body.message, message);
          assert.ok(!res.body.message.includes("short-cookie-password"), "never the value");
        }
      }
    } finally {
      await emulator.close();
    }
  },
);

dbTest("workos-login answers CORS preflight and refuses other methods with 405", async () => {
  await withWorkos(async ({ login }) => {
    const preflight = await call(login, "workos-login", { method: "OPTIONS" });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get("access-control-allow-headers")!, /authorization/);
    const post = await call(login, "workos-login", { method: "POST", body: {} });
    assert.equal(post.status, 405);
    assert.equal(post.body.code, "METHOD_NOT_ALLOWED");
    assert.equal(post.headers.get("allow"), "GET");
  });
});

// ---------------------------------------------------------------------------------------------
// return_to paths that a client could read as another host (SPEC §13.9)
// ---------------------------------------------------------------------------------------------

const dotSegmentRedirects = [
  "/..//evil.com", // resolves to https://app.test//evil.com
  "/.//evil.com",
  "/a/..//evil.com",
  "/dash/../..//evil.com",
  "/..",
  "/dash/..",
  "/dash/../settings",
  "/dash/..?next=1",
  "https://app.test//evil.com",
  "https://app.test/..//evil.com",
  "https://console.test//evil.com",
  "https://console.test/app/..",
  "myapp://auth/cb/..",
  "myapp://auth/cb/../../evil",
];

dbTest(
  "workos-login refuses a return_to whose resolved path starts with // or has a .. segment",
  async () => {
    await withWorkos(async ({ login }) => {
      for (const returnTo of dotSegmentRedirects) {
        for (const redirect of ["false", "true"]) {
          const res = await call(
            login,
            `workos-login?${new URLSearchParams({ return_to: returnTo, redirect })}`,
          );
          assert.equal(res.status, 400, `return_to ${JSON.stringify(returnTo)}`);
          assert.equal(res.body.code, invalidReturnTo);
          assert.equal(res.headers.get("set-cookie"), null);
        }
      }
    });
  },
);

Deno.test("resolveReturnTo refuses // paths and .. segments, and keeps dots inside names", () => {
  const policy = {
    siteUrl: "https://app.test",
    allowedRedirectUrls: ["https://console.test", "myapp://auth"],
  };
  for (const value of dotSegmentRedirects) {
    assert.deepEqual(resolveReturnTo(value, policy), { ok: false, problem: "invalid" }, value);
  }
  for (
    const value of ["/a..b", "/..a/", "/v1.2/x", "/.well-known/x", "https://console.test/a/...b"]
  ) {
    assert.equal(resolveReturnTo(value, policy).ok, true, value);
  }
});

// ---------------------------------------------------------------------------------------------
// Redirect mode: the state bound to the browser by a cookie (SPEC §13.12, login CSRF)
// ---------------------------------------------------------------------------------------------

async function sha256Base64Url(value: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value)),
  );
  return encodeBase64Url(digest);
}

dbTest(
  "workos-login?redirect=true answers 302 to AuthKit and sets a cookie bound into the state",
  async () => {
    await withWorkos(async ({ emulator, deps, login }) => {
      const res = await call(login, "workos-login?return_to=%2Fdash&redirect=true");
      assert.equal(res.status, 302);
      assert.equal(res.headers.get("cache-control"), "no-store");
      const location = new URL(res.headers.get("location")!);
      assert.equal(
        `${location.origin}${location.pathname}`,
        `${emulator.url}/user_management/authorize`,
      );
      assert.equal(location.searchParams.get("code_challenge_method"), "S256");

      const setCookie = res.headers.get("set-cookie")!;
      const match = /^workos-login=([A-Za-z0-9_-]{43}); (.*)$/.exec(setCookie);
      assert.ok(match, setCookie);
      assert.deepEqual(match[2].split("; ").sort(), [
        "HttpOnly",
        "Max-Age=600",
        "Path=/functions/v1/workos-callback",
        "SameSite=Lax",
      ]);
      const state = await createStateSealer(cookiePassword).open(
        location.searchParams.get("state")!,
        deps.now(),
      );
      assert.equal(state?.returnTo, "https://app.test/dash");
      // The state holds the cookie's hash, never the cookie itself.
      assert.equal(state?.browserBinding, await sha256Base64Url(match[1]));
      assert.ok(!location.href.includes(match[1]));
    });
  },
);

dbTest("workos-login gives every redirect-mode sign-in its own cookie value", async () => {
  await withWorkos(async ({ startInBrowser }) => {
    const [a, b] = [await startInBrowser("/"), await startInBrowser("/")];
    assert.notEqual(a.cookie, b.cookie);
  });
});

dbTest(
  "workos-login marks the cookie Secure and __Secure- when the callback is https",
  async () => {
    await withWorkos(async ({ login }) => {
      const res = await call(login, "workos-login?redirect=true");
      assert.equal(res.status, 302);
      const setCookie = res.headers.get("set-cookie")!;
      assert.match(setCookie, /^__Secure-workos-login=[A-Za-z0-9_-]{43}; /);
      assert.ok(setCookie.split("; ").includes("Secure"), setCookie);
      assert.ok(setCookie.split("; ").includes("Path=/auth/v1/callback"), setCookie);
    }, { env: { WORKOS_REDIRECT_URI: "https://auth.app.test/auth/v1/callback" } });
  },
);

dbTest("workos-login in JSON mode sets no cookie and binds no browser", async () => {
  await withWorkos(async ({ deps, login }) => {
    for (const query of ["", "&redirect=false"]) {
      const res = await call(login, `workos-login?return_to=%2F${query}`);
      assert.equal(res.status, 200, query);
      assert.equal(res.headers.get("set-cookie"), null);
      const url = new URL(res.body.url);
      const state = await createStateSealer(cookiePassword).open(
        url.searchParams.get("state")!,
        deps.now(),
      );
      assert.equal(state?.browserBinding, null);
    }
  });
});

dbTest("workos-login refuses another redirect value with 400 and sets no cookie", async () => {
  await withWorkos(async ({ login }) => {
    for (
      const query of ["redirect=yes", "redirect=1", "redirect=", "redirect=true&redirect=true"]
    ) {
      const res = await call(login, `workos-login?${query}`);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.code, "VALIDATION_FAILED");
      assert.equal(res.headers.get("set-cookie"), null);
    }
  });
});
