/**
 * client/mod.ts against a fake `fetch` (a scripted functions server) and a fake clock: no network,
 * no database, no real timers.
 */
import assert from "node:assert/strict";
import {
  type AuthClientOptions,
  AuthError,
  type AuthEvent,
  type AuthStorage,
  createAuthClient,
  type EventListenerLike,
  type LocksLike,
  memoryStorage,
  type Session,
  type StorageEventLike,
} from "../client/mod.ts";

const FUNCTIONS_URL = "https://ref.supabase.co/functions/v1";
const API_KEY = "sb_publishable_test";
const START_MS = Date.UTC(2030, 0, 1); // a fixed "now"; the client only ever sees the fake clock

interface Call {
  method: string;
  /** The path under FUNCTIONS_URL, with its query. */
  path: string;
  headers: Headers;
  body: unknown;
}

type Route = (call: Call) => Response | Promise<Response>;

/** A scripted functions server: one handler per `METHOD path`, every request recorded. */
function fakeServer(routes: Record<string, Route> = {}) {
  const calls: Call[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const text = await request.text();
    const path = request.url.startsWith(`${FUNCTIONS_URL}/`)
      ? request.url.slice(FUNCTIONS_URL.length + 1)
      : request.url;
    const call = {
      method: request.method,
      path,
      headers: request.headers,
      body: text ? JSON.parse(text) : undefined,
    };
    calls.push(call);
    const route = routes[`${request.method} ${path.split("?")[0]}`];
    if (!route) return json(404, { code: "NOT_FOUND", message: "No such route" });
    return await route(call);
  };
  const to = (method: string, path: string) =>
    calls.filter((call) => call.method === method && call.path.split("?")[0] === path);
  return { calls, fetch, routes, to };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "x-request-id": "req-1", ...headers },
  });
}

function fakeClock() {
  let nowMs = START_MS;
  return {
    now: () => nowMs,
    advanceSeconds(seconds: number) {
      nowMs += seconds * 1000;
    },
    seconds: () => Math.floor(nowMs / 1000),
  };
}

const person = {
  id: "11111111-1111-4111-8111-111111111111",
  email: "ada@example.com",
  display_name: "Ada",
  created_at: "2030-01-01T00:00:00Z",
};

/** A stored session `n` whose access token has `secondsLeft` to live. */
function sessionFor(clock: ReturnType<typeof fakeClock>, n: number, secondsLeft = 3600): Session {
  return {
    access_token: `access-${n}`,
    token_type: "bearer",
    expires_in: 3600,
    expires_at: clock.seconds() + secondsLeft,
    refresh_token: `refresh-${n}`,
    person_id: person.id,
    person,
  };
}

/** What `refresh` answers for a given refresh token: its successor, a full token response. */
function refreshAnswer(clock: ReturnType<typeof fakeClock>, body: unknown) {
  const n = Number(String((body as { refresh_token: string }).refresh_token).split("-")[1]) + 1;
  const { person_id: _, ...answer } = sessionFor(clock, n);
  return answer;
}

function deferred() {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => (release = resolve));
  return { promise, release };
}

/** A Web Locks stand-in: one holder per name at a time, the rest wait in order. */
function fakeLocks(): LocksLike & { names: string[] } {
  const tails = new Map<string, Promise<unknown>>();
  const names: string[] = [];
  return {
    names,
    request<T>(name: string, callback: (lock: unknown) => Promise<T>): Promise<T> {
      names.push(name);
      const previous = tails.get(name) ?? Promise.resolve();
      const run = previous.then(() => callback({ name }));
      tails.set(name, run.catch(() => undefined));
      return run;
    },
  };
}

/** A `localStorage` stand-in: synchronous, over a map that two "tabs" may share. */
function syncStorage(items = new Map<string, string>()): AuthStorage & { items: typeof items } {
  return {
    items,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

/** An AsyncStorage stand-in: every method answers a promise. */
function asyncStorage(items = new Map<string, string>()): AuthStorage & { items: typeof items } {
  return {
    items,
    getItem: (key) => Promise.resolve(items.get(key) ?? null),
    setItem: async (key, value) => {
      await Promise.resolve();
      items.set(key, value);
    },
    removeItem: async (key) => {
      await Promise.resolve();
      items.delete(key);
    },
  };
}

function setup(
  options: Partial<AuthClientOptions> & { routes?: Record<string, Route>; session?: Session } = {},
) {
  const clock = fakeClock();
  const server = fakeServer(options.routes);
  server.routes["POST refresh"] ??= (call) => json(200, refreshAnswer(clock, call.body));
  const storage = options.storage ?? memoryStorage();
  const events: [AuthEvent, Session | null][] = [];
  const auth = createAuthClient({
    functionsUrl: FUNCTIONS_URL,
    apiKey: API_KEY,
    fetch: server.fetch,
    now: clock.now,
    locks: null,
    window: null,
    ...options,
    storage,
  });
  auth.onAuthStateChange((event, session) => events.push([event, session]));
  const store = async (session: Session) => {
    await storage.setItem(options.storageKey ?? "platform-auth.session", JSON.stringify(session));
  };
  return { auth, clock, server, storage, events, store };
}

// ---- headers ----

Deno.test("calls without a user token carry the apikey as apikey and as bearer", async () => {
  const { auth, server } = setup({
    routes: {
      "POST otp-send": () => json(200, { method_id: "email-test-1" }),
      "GET workos-login": () => json(200, { url: "https://authkit.test/authorize?x=1" }),
    },
  });
  assert.deepEqual(await auth.sendOtp("ada@example.com"), { method_id: "email-test-1" });
  await auth.signInWithWorkOS({ returnTo: "/dashboard?tab=a&b" });
  for (const call of server.calls) {
    assert.equal(call.headers.get("apikey"), API_KEY);
    assert.equal(call.headers.get("authorization"), `Bearer ${API_KEY}`);
  }
  assert.deepEqual(server.calls[0].body, { email: "ada@example.com" });
  assert.equal(server.calls[0].headers.get("content-type"), "application/json");
  assert.equal(
    server.calls[1].path,
    "workos-login?return_to=%2Fdashboard%3Ftab%3Da%26b&redirect=false",
  );
});

Deno.test("calls with a session carry its access token as bearer and the apikey", async () => {
  const { auth, server, clock, store } = setup({
    routes: { "GET me": () => json(200, { person, workspaces: [] }) },
  });
  await store(sessionFor(clock, 1));
  assert.deepEqual(await auth.me(), { person, workspaces: [] });
  assert.equal(server.calls[0].headers.get("apikey"), API_KEY);
  assert.equal(server.calls[0].headers.get("authorization"), "Bearer access-1");
});

Deno.test("the refresh call carries the apikey as bearer, not the expiring access token", async () => {
  const { auth, server, clock, store } = setup();
  await store(sessionFor(clock, 1, 30));
  await auth.accessToken();
  const [refresh] = server.to("POST", "refresh");
  assert.equal(refresh.headers.get("authorization"), `Bearer ${API_KEY}`);
  assert.equal(refresh.headers.get("apikey"), API_KEY);
  assert.deepEqual(refresh.body, { refresh_token: "refresh-1" });
});

// ---- OTP and the stored session ----

Deno.test("verifyOtp() stores the session and tells listeners SIGNED_IN", async () => {
  const { auth, server, clock, events, storage } = setup({
    routes: {
      "POST otp-verify": () =>
        json(200, { ...refreshAnswer(clock, { refresh_token: "refresh-0" }), is_new_user: true }),
    },
  });
  const answer = await auth.verifyOtp("email-test-1", "123456");
  assert.equal(answer.is_new_user, true);
  assert.deepEqual(server.calls[0].body, { method_id: "email-test-1", code: "123456" });
  const session = await auth.getSession();
  assert.equal(session?.access_token, "access-1");
  assert.equal(session?.refresh_token, "refresh-1");
  assert.equal(session?.person_id, person.id);
  assert.deepEqual(session?.person, person);
  assert.deepEqual(JSON.parse(await storage.getItem("platform-auth.session") as string), session);
  assert.deepEqual(events, [["SIGNED_IN", session]]);
});

Deno.test("verifyOtp() throws the server's error as an AuthError and stores nothing", async () => {
  const { auth, events } = setup({
    routes: {
      "POST otp-verify": () =>
        json(401, { code: "INVALID_CODE", message: "The code is wrong or expired" }, {
          "x-request-id": "req-42",
        }),
    },
  });
  const error = await auth.verifyOtp("email-test-1", "000000").catch((e) => e);
  assert.ok(error instanceof AuthError);
  assert.equal(error.status, 401);
  assert.equal(error.code, "INVALID_CODE");
  assert.equal(error.message, "The code is wrong or expired");
  assert.equal(error.requestId, "req-42");
  assert.equal(await auth.getSession(), null);
  assert.deepEqual(events, []);
});

Deno.test("a network failure is an AuthError NETWORK_ERROR with status 0", async () => {
  const { auth } = setup({
    fetch: () => Promise.reject(new TypeError("Failed to fetch")),
  });
  const error = await auth.sendOtp("ada@example.com").catch((e) => e);
  assert.ok(error instanceof AuthError);
  assert.equal(error.code, "NETWORK_ERROR");
  assert.equal(error.status, 0);
  assert.equal(error.requestId, null);
  assert.ok(error.cause instanceof TypeError);
});

Deno.test("an error answer that is not JSON keeps its status with code UNEXPECTED_STATUS", async () => {
  const { auth } = setup({
    routes: { "POST otp-send": () => new Response("Bad gateway", { status: 502 }) },
  });
  const error = await auth.sendOtp("ada@example.com").catch((e) => e);
  assert.ok(error instanceof AuthError);
  assert.equal(error.status, 502);
  assert.equal(error.code, "UNEXPECTED_STATUS");
});

Deno.test("accessToken() answers null and calls nobody when signed out", async () => {
  const { auth, server } = setup();
  assert.equal(await auth.accessToken(), null);
  assert.equal(await auth.getSession(), null);
  assert.equal(server.calls.length, 0);
});

Deno.test("accessToken() refreshes only when less than 60 s remain", async () => {
  const { auth, server, clock, store, events } = setup();
  await store(sessionFor(clock, 1, 61));
  assert.equal(await auth.accessToken(), "access-1");
  assert.equal(server.calls.length, 0);

  clock.advanceSeconds(2); // 59 s left
  assert.equal(await auth.accessToken(), "access-2");
  assert.equal(server.to("POST", "refresh").length, 1);
  const session = await auth.getSession();
  assert.equal(session?.refresh_token, "refresh-2", "the rotated refresh token is kept");
  assert.deepEqual(events, [["TOKEN_REFRESHED", session]]);
  assert.equal(await auth.accessToken(), "access-2");
  assert.equal(server.calls.length, 1);
});

Deno.test("accessToken() works unbound, as supabase-js's accessToken option calls it", async () => {
  const { auth, clock, store } = setup();
  await store(sessionFor(clock, 1));
  const { accessToken } = auth;
  const options = { accessToken };
  assert.equal(await options.accessToken(), "access-1");
});

// ---- one refresh at a time ----

Deno.test("20 concurrent accessToken() calls share one refresh request", async () => {
  const gate = deferred();
  const { auth, server, clock, store, events } = setup({
    routes: {
      "POST refresh": async (call) => {
        await gate.promise;
        return json(200, refreshAnswer(clock, call.body));
      },
    },
  });
  await store(sessionFor(clock, 1, 10));
  const tokens = Array.from({ length: 20 }, () => auth.accessToken());
  await new Promise((resolve) => setTimeout(resolve, 1));
  gate.release();
  assert.deepEqual(await Promise.all(tokens), Array(20).fill("access-2"));
  assert.equal(server.to("POST", "refresh").length, 1);
  assert.equal(events.filter(([event]) => event === "TOKEN_REFRESHED").length, 1);
});

Deno.test("two clients on one storage behind Web Locks make one refresh request in all", async () => {
  const clock = fakeClock();
  const server = fakeServer({
    "POST refresh": (call) => json(200, refreshAnswer(clock, call.body)),
  });
  const locks = fakeLocks();
  const items = new Map<string, string>(); // one origin's localStorage, seen by two tabs
  const tab = () =>
    createAuthClient({
      functionsUrl: FUNCTIONS_URL,
      apiKey: API_KEY,
      fetch: server.fetch,
      now: clock.now,
      locks,
      window: null,
      storage: syncStorage(items),
    });
  const [first, second] = [tab(), tab()];
  items.set("platform-auth.session", JSON.stringify(sessionFor(clock, 1, 10)));

  const tokens = await Promise.all([first.accessToken(), second.accessToken()]);
  assert.deepEqual(tokens, ["access-2", "access-2"]);
  assert.equal(server.to("POST", "refresh").length, 1);
  assert.deepEqual(locks.names, ["platform-auth.session.refresh", "platform-auth.session.refresh"]);
  assert.equal(JSON.parse(items.get("platform-auth.session") as string).refresh_token, "refresh-2");
});

Deno.test("two clients on one storage share one refresh through Deno's own navigator.locks", async () => {
  const clock = fakeClock();
  const server = fakeServer({
    "POST refresh": (call) => json(200, refreshAnswer(clock, call.body)),
  });
  const items = new Map<string, string>();
  const tab = () =>
    createAuthClient({
      functionsUrl: FUNCTIONS_URL,
      apiKey: API_KEY,
      fetch: server.fetch,
      now: clock.now,
      window: null,
      storage: syncStorage(items),
      storageKey: "client-test.real-locks",
    });
  items.set("client-test.real-locks", JSON.stringify(sessionFor(clock, 1, 10)));
  const tokens = await Promise.all([tab().accessToken(), tab().accessToken()]);
  assert.deepEqual(tokens, ["access-2", "access-2"]);
  assert.equal(server.to("POST", "refresh").length, 1);
});

Deno.test("a refresh answered after another tab signed out does not bring the session back", async () => {
  const gate = deferred();
  const { auth, clock, store, storage, events } = setup({
    routes: {
      "POST refresh": async (call) => {
        await gate.promise;
        return json(200, refreshAnswer(clock, call.body));
      },
    },
  });
  await store(sessionFor(clock, 1, 10));
  const token = auth.accessToken();
  await new Promise((resolve) => setTimeout(resolve, 1));
  await storage.removeItem("platform-auth.session"); // the other tab's sign-out
  gate.release();
  assert.equal(await token, null);
  assert.equal(await auth.getSession(), null);
  assert.deepEqual(events, []);
});

// ---- refresh failures ----

Deno.test("a refresh that fails with a network error is retried once at once", async () => {
  let attempts = 0;
  const { auth, server, clock, store } = setup({
    routes: {
      "POST refresh": (call) => {
        attempts += 1;
        if (attempts === 1) throw new TypeError("connection reset");
        return json(200, refreshAnswer(clock, call.body));
      },
    },
  });
  await store(sessionFor(clock, 1, 10));
  assert.equal(await auth.accessToken(), "access-2");
  const refreshes = server.to("POST", "refresh");
  assert.equal(refreshes.length, 2);
  assert.deepEqual(refreshes.map((call) => call.body), [
    { refresh_token: "refresh-1" },
    { refresh_token: "refresh-1" },
  ]);
});

Deno.test("a refresh that fails twice on the network rejects and keeps the session", async () => {
  const { auth, server, clock, store, events } = setup({
    routes: {
      "POST refresh": () => {
        throw new TypeError("offline");
      },
    },
  });
  await store(sessionFor(clock, 1, -5));
  const error = await auth.accessToken().catch((e) => e);
  assert.ok(error instanceof AuthError);
  assert.equal(error.code, "NETWORK_ERROR");
  assert.equal(server.to("POST", "refresh").length, 2);
  assert.equal((await auth.getSession())?.refresh_token, "refresh-1");
  assert.deepEqual(events, []);
});

Deno.test("a refresh that fails for a passing reason answers the token while it still works", async () => {
  const { auth, clock, store } = setup({
    routes: {
      "POST refresh": () => json(503, { code: "NOT_CONFIGURED", message: "Not configured" }),
    },
  });
  await store(sessionFor(clock, 1, 30));
  assert.equal(await auth.accessToken(), "access-1");
  clock.advanceSeconds(31);
  const error = await auth.accessToken().catch((e) => e);
  assert.ok(error instanceof AuthError);
  assert.equal(error.status, 503);
  assert.equal((await auth.getSession())?.access_token, "access-1");
});

for (const code of ["SESSION_REVOKED", "REFRESH_TOKEN_REUSED", "INVALID_REFRESH_TOKEN"]) {
  Deno.test(`a refresh answered 401 ${code} signs out and tells listeners`, async () => {
    const { auth, clock, store, events } = setup({
      routes: { "POST refresh": () => json(401, { code, message: "The session has ended" }) },
    });
    await store(sessionFor(clock, 1, 30));
    const error = await auth.accessToken().catch((e) => e);
    assert.ok(error instanceof AuthError);
    assert.equal(error.status, 401);
    assert.equal(error.code, code);
    assert.equal(await auth.getSession(), null);
    assert.deepEqual(events, [["SIGNED_OUT", null]]);
    assert.equal(await auth.accessToken(), null);
  });
}

// ---- fetch and TOKEN_EXPIRED ----

Deno.test("fetch() refreshes and retries once on 401 TOKEN_EXPIRED", async () => {
  const { auth, server, clock, store } = setup({
    routes: {
      "GET me": (call) =>
        call.headers.get("authorization") === "Bearer access-1"
          ? json(401, { code: "TOKEN_EXPIRED", message: "The token has expired" })
          : json(200, { person, workspaces: [] }),
    },
  });
  await store(sessionFor(clock, 1)); // our clock says fine; the server's disagrees
  const response = await auth.fetch("me");
  assert.equal(response.status, 200);
  assert.deepEqual(
    server.calls.map((call) => `${call.method} ${call.path} ${call.headers.get("authorization")}`),
    ["GET me Bearer access-1", "POST refresh Bearer sb_publishable_test", "GET me Bearer access-2"],
  );
});

Deno.test("fetch() retries only once: a second TOKEN_EXPIRED is answered, not looped", async () => {
  let meCalls = 0;
  const { auth, server, clock, store } = setup({
    routes: {
      // Both rounds below make two calls; a loop would reach the fifth, answered 200 so that the
      // test fails instead of hanging.
      "GET me": () =>
        ++meCalls <= 4
          ? json(401, { code: "TOKEN_EXPIRED", message: "The token has expired" })
          : json(200, { person, workspaces: [] }),
    },
  });
  await store(sessionFor(clock, 1));
  const response = await auth.fetch("me");
  assert.equal(response.status, 401);
  assert.equal((await response.json()).code, "TOKEN_EXPIRED");
  assert.equal(server.to("GET", "me").length, 2);
  assert.equal(server.to("POST", "refresh").length, 1);

  const error = await auth.me().catch((e) => e);
  assert.ok(error instanceof AuthError);
  assert.equal(error.code, "TOKEN_EXPIRED");
  assert.equal(error.requestId, "req-1");
  assert.equal(server.to("GET", "me").length, 4);
  assert.equal(server.to("POST", "refresh").length, 2);
});

Deno.test("fetch() does not refresh on other 401 codes", async () => {
  const { auth, server, clock, store } = setup({
    routes: { "GET me": () => json(401, { code: "UNAUTHORIZED", message: "Bad token" }) },
  });
  await store(sessionFor(clock, 1));
  assert.equal((await auth.fetch("me")).status, 401);
  assert.equal(server.calls.length, 1);
});

Deno.test("fetch() resolves relative inputs and keeps the caller's headers and body", async () => {
  const { auth, server, clock, store } = setup({
    routes: { "POST things": () => json(201, { ok: true }) },
  });
  await store(sessionFor(clock, 1));
  await auth.fetch("/things", {
    method: "POST",
    headers: { "content-type": "application/json", "x-trace": "t-1", authorization: "Bearer no" },
    body: JSON.stringify({ a: 1 }),
  });
  await auth.fetch(new URL("https://elsewhere.test/x"));
  await auth.fetch(new Request(`${FUNCTIONS_URL}/me?full=1`));
  const [things, absolute, request] = server.calls;
  assert.equal(things.path, "things");
  assert.equal(things.headers.get("x-trace"), "t-1");
  assert.equal(things.headers.get("authorization"), "Bearer access-1");
  assert.deepEqual(things.body, { a: 1 });
  assert.equal(absolute.path, "https://elsewhere.test/x");
  assert.equal(absolute.headers.get("authorization"), null, "no token for another origin");
  assert.equal(absolute.headers.get("apikey"), null);
  assert.equal(request.path, "me?full=1");
  assert.equal(request.headers.get("authorization"), "Bearer access-1");
  assert.equal(request.headers.get("apikey"), API_KEY);
});

Deno.test("fetch() sends the token to the project's other services, not to other hosts", async () => {
  const { auth, server, clock, store } = setup();
  await store(sessionFor(clock, 1));
  await auth.fetch("https://REF.supabase.co/rest/v1/notes");
  await auth.fetch("https://ref.supabase.co.evil.test/functions/v1/me");
  await auth.fetch(new Request("http://ref.supabase.co/functions/v1/me"));
  assert.deepEqual(server.calls.map((call) => call.headers.get("authorization")), [
    "Bearer access-1",
    null,
    null,
  ]);
});

Deno.test("fetch() without a session sends the apikey as bearer", async () => {
  const { auth, server } = setup({
    routes: { "GET me": () => json(401, { code: "UNAUTHORIZED", message: "No token" }) },
  });
  assert.equal((await auth.fetch("me")).status, 401);
  assert.equal(server.calls[0].headers.get("authorization"), `Bearer ${API_KEY}`);
});

// ---- WorkOS ----

function fakeWindow(href: string) {
  const replaced: unknown[][] = [];
  const handlers = new Map<string, (event: StorageEventLike) => void>();
  const window = {
    location: { href },
    history: {
      replaceState: (...args: unknown[]) => void replaced.push(args),
    },
    addEventListener: (type: string, listener: EventListenerLike) =>
      void handlers.set(type, listener),
    removeEventListener: (type: string) => void handlers.delete(type),
  };
  return { window, replaced, handlers };
}

Deno.test("signInWithWorkOS() sends the browser to the AuthKit URL and answers it", async () => {
  const { window } = fakeWindow("https://console.test/login");
  const { auth } = setup({
    window,
    routes: { "GET workos-login": () => json(200, { url: "https://authkit.test/authorize" }) },
  });
  assert.equal(await auth.signInWithWorkOS({ returnTo: "/" }), "https://authkit.test/authorize");
  assert.equal(window.location.href, "https://authkit.test/authorize");
});

Deno.test("signInWithWorkOS() without a browser only answers the URL", async () => {
  const { auth, server } = setup({
    routes: { "GET workos-login": () => json(200, { url: "https://authkit.test/authorize" }) },
  });
  assert.equal(await auth.signInWithWorkOS(), "https://authkit.test/authorize");
  assert.equal(server.calls[0].path, "workos-login?redirect=false");
});

Deno.test("consumeWorkOSCallback() stores the fragment's session and clears the fragment", async () => {
  const { window, replaced } = fakeWindow(
    "https://console.test/dashboard?tab=1#access_token=access-1&token_type=bearer&expires_in=3600" +
      `&expires_at=1893459600&refresh_token=refresh-1&person_id=${person.id}`,
  );
  const { auth, events } = setup({ window });
  const result = await auth.consumeWorkOSCallback();
  const expected: Session = {
    access_token: "access-1",
    token_type: "bearer",
    expires_in: 3600,
    expires_at: 1893459600,
    refresh_token: "refresh-1",
    person_id: person.id,
    person: null,
  };
  assert.deepEqual(result, { session: expected });
  assert.deepEqual(await auth.getSession(), expected);
  assert.deepEqual(replaced, [[null, "", "/dashboard?tab=1"]]);
  assert.deepEqual(events, [["SIGNED_IN", expected]]);
});

Deno.test("consumeWorkOSCallback() answers an error fragment and stores nothing", async () => {
  const { window, replaced } = fakeWindow(
    "https://console.test/#error=ACCESS_DENIED&error_description=Sign-in+was+cancelled%2E",
  );
  const { auth, events } = setup({ window });
  assert.deepEqual(await auth.consumeWorkOSCallback(), {
    error: "ACCESS_DENIED",
    error_description: "Sign-in was cancelled.",
  });
  assert.equal(await auth.getSession(), null);
  assert.deepEqual(replaced, [[null, "", "/"]]);
  assert.deepEqual(events, []);
});

Deno.test("consumeWorkOSCallback() answers null and touches nothing without a result", async () => {
  for (const href of ["https://console.test/a?b=1", "https://console.test/a#section-2"]) {
    const { window, replaced } = fakeWindow(href);
    const { auth, events } = setup({ window });
    assert.equal(await auth.consumeWorkOSCallback(), null);
    assert.deepEqual(replaced, []);
    assert.deepEqual(events, []);
  }
  const { auth } = setup(); // no browser, no url
  assert.equal(await auth.consumeWorkOSCallback(), null);
});

Deno.test("consumeWorkOSCallback(url) reads a deep link without a browser", async () => {
  const { auth } = setup();
  const result = await auth.consumeWorkOSCallback(
    "myapp://signed-in#access_token=a&token_type=bearer&expires_in=60&expires_at=99&refresh_token=r",
  );
  assert.equal(result?.session?.access_token, "a");
  assert.equal(result?.session?.person_id, null);
});

Deno.test("consumeWorkOSCallback() refuses an incomplete token fragment", async () => {
  const { window, replaced } = fakeWindow("https://console.test/#access_token=a&expires_at=99");
  const { auth } = setup({ window });
  const result = await auth.consumeWorkOSCallback();
  assert.equal(result?.error, "INVALID_CALLBACK");
  assert.equal(await auth.getSession(), null);
  assert.equal(replaced.length, 1, "the partial tokens are cleared all the same");
});

// ---- storage adapters ----

const adapters: [string, () => AuthStorage & { items?: Map<string, string> }][] = [
  ["memoryStorage()", memoryStorage],
  ["a localStorage-like storage", () => syncStorage()],
  ["an AsyncStorage-like storage", () => asyncStorage()],
];

for (const [name, makeStorage] of adapters) {
  Deno.test(`the session survives a new client and leaves on sign-out with ${name}`, async () => {
    const storage = makeStorage();
    const { auth, clock, server } = setup({
      storage,
      storageKey: "app.auth",
      routes: {
        "POST otp-verify": () =>
          json(200, {
            ...refreshAnswer(clock, { refresh_token: "refresh-0" }),
            is_new_user: false,
          }),
        "POST logout": () => json(200, { logout_url: null }),
      },
    });
    await auth.verifyOtp("email-test-1", "123456");
    if (storage.items) {
      assert.equal(JSON.parse(storage.items.get("app.auth") as string).access_token, "access-1");
    }
    const again = createAuthClient({
      functionsUrl: FUNCTIONS_URL,
      apiKey: API_KEY,
      storage,
      storageKey: "app.auth",
      fetch: server.fetch,
      now: clock.now,
      locks: null,
    });
    assert.equal(await again.accessToken(), "access-1");
    await again.signOut();
    assert.equal(await auth.getSession(), null);
    assert.equal(await storage.getItem("app.auth"), null);
  });
}

Deno.test("an unreadable stored session counts as signed out", async () => {
  const storage = syncStorage(new Map([["platform-auth.session", "{not json"]]));
  const { auth } = setup({ storage });
  assert.equal(await auth.getSession(), null);
  assert.equal(await auth.accessToken(), null);
});

// ---- listeners ----

Deno.test("onAuthStateChange() listeners hear every event until they unsubscribe", async () => {
  const { auth, clock, store } = setup({
    routes: { "POST logout": () => json(200, { logout_url: "https://workos.test/logout" }) },
  });
  const heard: string[] = [];
  const stop = auth.onAuthStateChange((event) => heard.push(`a:${event}`));
  auth.onAuthStateChange((event) => heard.push(`b:${event}`));
  await store(sessionFor(clock, 1, 10));
  await auth.accessToken();
  stop();
  stop(); // twice is harmless
  await auth.signOut();
  assert.deepEqual(heard, ["a:TOKEN_REFRESHED", "b:TOKEN_REFRESHED", "b:SIGNED_OUT"]);
});

Deno.test("other tabs' changes arrive through storage events while someone listens", () => {
  const { window, handlers } = fakeWindow("https://console.test/");
  const storage = syncStorage();
  const clock = fakeClock();
  const auth = createAuthClient({
    functionsUrl: FUNCTIONS_URL,
    apiKey: API_KEY,
    storage,
    window,
    now: clock.now,
  });
  const heard: [AuthEvent, string | undefined][] = [];
  const stop = auth.onAuthStateChange((event, session) =>
    heard.push([event, session?.access_token])
  );
  const onStorage = handlers.get("storage");
  assert.ok(onStorage);
  const one = JSON.stringify(sessionFor(clock, 1));
  const two = JSON.stringify(sessionFor(clock, 2));
  const event = (key: string | null, oldValue: string | null, newValue: string | null) => ({
    key,
    oldValue,
    newValue,
    storageArea: storage,
  });
  onStorage(event("platform-auth.session", null, one));
  onStorage(event("platform-auth.session", one, two));
  onStorage(event("other.key", null, one));
  onStorage({ ...event("platform-auth.session", two, null), storageArea: {} }); // sessionStorage
  onStorage(event("platform-auth.session", two, null));
  assert.deepEqual(heard, [
    ["SIGNED_IN", "access-1"],
    ["TOKEN_REFRESHED", "access-2"],
    ["SIGNED_OUT", undefined],
  ]);
  stop();
  assert.equal(handlers.has("storage"), false);
});

// ---- workspaces ----

Deno.test("switchWorkspace() stores the new access token and keeps the refresh token", async () => {
  const { auth, server, clock, store, events } = setup({
    routes: {
      "POST workspaces/w%201/switch": () =>
        json(200, {
          access_token: "access-switched",
          token_type: "bearer",
          expires_in: 3600,
          expires_at: clock.seconds() + 3600,
          person,
        }),
    },
  });
  await store(sessionFor(clock, 1));
  const session = await auth.switchWorkspace("w 1");
  assert.equal(session.access_token, "access-switched");
  assert.equal(session.refresh_token, "refresh-1");
  assert.deepEqual(await auth.getSession(), session);
  assert.equal(server.calls[0].headers.get("authorization"), "Bearer access-1");
  assert.deepEqual(events, [["WORKSPACE_SWITCHED", session]]);
});

Deno.test("the workspace wrappers call their sub-paths with the bearer (204 is null)", async () => {
  const member = {
    person_id: "p1",
    display_name: null,
    email: "b@example.com",
    role: "admin",
    joined_at: "2030-01-01T00:00:00Z",
  };
  const invitation = { id: "i1", email: "c@example.com", role: "member", expires_at: "x" };
  const { auth, server, clock, store } = setup({
    routes: {
      "GET workspaces": () => json(200, { workspaces: [] }),
      "GET workspaces/w1/members": () => json(200, { members: [member] }),
      "POST workspaces/w1/invitations": () => json(201, invitation),
      "GET workspaces/w1/invitations": () => json(200, { invitations: [invitation] }),
      "DELETE workspaces/w1/invitations/i1": () => new Response(null, { status: 204 }),
      "PATCH workspaces/w1/members/p1": () => json(200, member),
      "DELETE workspaces/w1/members/p1": () => new Response(null, { status: 204 }),
    },
  });
  await store(sessionFor(clock, 1));
  assert.deepEqual(await auth.workspaces(), { workspaces: [] });
  assert.deepEqual(await auth.members("w1"), { members: [member] });
  assert.deepEqual(await auth.invite("w1", { email: "c@example.com", role: "member" }), invitation);
  assert.deepEqual(await auth.invitations("w1"), { invitations: [invitation] });
  assert.equal(await auth.revokeInvitation("w1", "i1"), null);
  assert.deepEqual(await auth.updateMember("w1", "p1", { role: "admin" }), member);
  assert.equal(await auth.removeMember("w1", "p1"), null);
  assert.deepEqual(
    server.calls.map((call) => [call.method, call.path, call.body]),
    [
      ["GET", "workspaces", undefined],
      ["GET", "workspaces/w1/members", undefined],
      ["POST", "workspaces/w1/invitations", { email: "c@example.com", role: "member" }],
      ["GET", "workspaces/w1/invitations", undefined],
      ["DELETE", "workspaces/w1/invitations/i1", undefined],
      ["PATCH", "workspaces/w1/members/p1", { role: "admin" }],
      ["DELETE", "workspaces/w1/members/p1", undefined],
    ],
  );
  for (const call of server.calls) {
    assert.equal(call.headers.get("authorization"), "Bearer access-1");
    assert.equal(call.headers.get("apikey"), API_KEY);
  }
});

// ---- sign-out ----

Deno.test("signOut() revokes at the server with the bearer and answers the logout URL", async () => {
  const { auth, server, clock, store, events } = setup({
    routes: { "POST logout": () => json(200, { logout_url: "https://workos.test/logout" }) },
  });
  await store(sessionFor(clock, 1));
  assert.deepEqual(await auth.signOut(), { logout_url: "https://workos.test/logout" });
  assert.equal(server.calls[0].headers.get("authorization"), "Bearer access-1");
  assert.equal(await auth.getSession(), null);
  assert.deepEqual(events, [["SIGNED_OUT", null]]);
});

Deno.test("signOut() forgets the session even when the server cannot be reached", async () => {
  const { auth, clock, store, events } = setup({
    routes: {
      "POST logout": () => {
        throw new TypeError("offline");
      },
    },
  });
  await store(sessionFor(clock, 1));
  assert.deepEqual(await auth.signOut(), { logout_url: null });
  assert.equal(await auth.getSession(), null);
  assert.deepEqual(events, [["SIGNED_OUT", null]]);
});

Deno.test("signOut() forgets the session when the server refuses it", async () => {
  const { auth, clock, store } = setup({
    routes: { "POST logout": () => json(401, { code: "SESSION_REVOKED", message: "Revoked" }) },
  });
  await store(sessionFor(clock, 1));
  assert.deepEqual(await auth.signOut(), { logout_url: null });
  assert.equal(await auth.getSession(), null);
});

Deno.test("signOut() when signed out calls nobody and tells nobody", async () => {
  const { auth, server, events } = setup();
  assert.deepEqual(await auth.signOut(), { logout_url: null });
  assert.equal(server.calls.length, 0);
  assert.deepEqual(events, []);
});

// ---- options ----

Deno.test("createAuthClient() refuses a functionsUrl that is not http(s) or a missing apiKey", () => {
  for (const functionsUrl of ["", "ref.supabase.co/functions/v1", "javascript:alert(1)"]) {
    assert.throws(() => createAuthClient({ functionsUrl, apiKey: API_KEY }), TypeError);
  }
  assert.throws(() => createAuthClient({ functionsUrl: FUNCTIONS_URL, apiKey: "" }), TypeError);
});

Deno.test("a trailing slash on functionsUrl does not double in paths", async () => {
  const { auth, server } = setup({
    functionsUrl: `${FUNCTIONS_URL}/`,
    routes: { "POST otp-send": () => json(200, { method_id: "m" }) },
  });
  await auth.sendOtp("ada@example.com");
  assert.equal(server.calls[0].path, "otp-send");
});
