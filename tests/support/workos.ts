/**
 * WorkOS sign-in fixtures: the emulator, deps whose WORKOS_* point at it, the two handlers built
 * with `maxRetries: 0`, and helpers that drive a sign-in the way a browser would.
 */
import type { Env } from "../../supabase/functions/_shared/config.ts";
import type { Handler } from "../../supabase/functions/_shared/http.ts";
import type { WorkosAuthOptions } from "../../supabase/functions/_shared/workos.ts";
import { createHandler as createCallbackHandler } from "../../supabase/functions/workos-callback/handler.ts";
import { createHandler as createLoginHandler } from "../../supabase/functions/workos-login/handler.ts";
import {
  startWorkosEmulator,
  type WorkosEmulator,
  type WorkosEmulatorUser,
} from "../../local/emulators/workos.ts";
import { testSql, uniqueEmail } from "./db.ts";
import { type TestClock, testDeps } from "./deps.ts";
import { call, type CallResult } from "./http.ts";

export const siteUrl = "https://app.test";
export const allowedRedirectUrls = "https://console.test, myapp://auth";
export const cookiePassword = "cookie-password-of-this-deployment-0123456789";
export const redirectUri = "http://127.0.0.1:54321/functions/v1/workos-callback";

/** The WORKOS_* (and redirect policy) variables for an emulator. */
export function workosEnv(emulator: WorkosEmulator, overrides: Env = {}): Env {
  return {
    WORKOS_API_KEY: emulator.apiKey,
    WORKOS_CLIENT_ID: emulator.clientId,
    WORKOS_REDIRECT_URI: redirectUri,
    WORKOS_COOKIE_PASSWORD: cookiePassword,
    WORKOS_API_URL: emulator.url,
    SITE_URL: siteUrl,
    ALLOWED_REDIRECT_URLS: allowedRedirectUrls,
    ...overrides,
  };
}

export interface WorkosFixture {
  emulator: WorkosEmulator;
  deps: ReturnType<typeof testDeps>;
  login: Handler;
  callback: Handler;
  /** workos-login for `returnTo` (omitted: none sent); the `{ url }` answer's URL. */
  authorizeUrl(returnTo?: string): Promise<URL>;
  /**
   * workos-login with `redirect=true`, as a browser navigates to it: the 302's AuthKit URL, and
   * the binding cookie it set, as `name=value` for a Cookie header and as the whole Set-Cookie.
   */
  startInBrowser(returnTo?: string): Promise<BrowserStart>;
  /** Signs `user` in at the emulator and returns the callback path AuthKit redirects to. */
  approve(authorizeUrl: URL, user?: Partial<WorkosEmulatorUser>): Promise<string>;
  /** authorizeUrl, approve, then workos-callback. */
  signIn(options?: { returnTo?: string; user?: Partial<WorkosEmulatorUser> }): Promise<CallResult>;
}

export interface BrowserStart {
  authorizeUrl: URL;
  /** `name=value`, what the browser sends back in `Cookie`. */
  cookie: string;
  setCookie: string;
}

export interface WorkosFixtureOptions {
  env?: Env;
  clock?: TestClock;
  workos?: WorkosAuthOptions;
}

/** Runs `test` with a fresh emulator and handlers; closes the emulator afterwards. */
export async function withWorkos(
  test: (fixture: WorkosFixture) => Promise<void>,
  options: WorkosFixtureOptions = {},
): Promise<void> {
  const emulator = await startWorkosEmulator();
  try {
    const deps = testDeps({
      env: workosEnv(emulator, options.env),
      clock: options.clock,
      workos: options.workos,
    });
    const login = createLoginHandler(deps);
    const callback = createCallbackHandler(deps);

    const authorizeUrl = async (returnTo?: string) => {
      const query = returnTo === undefined
        ? ""
        : `?${new URLSearchParams({ return_to: returnTo })}`;
      const res = await call(login, `workos-login${query}`);
      if (res.status !== 200) {
        throw new Error(`workos-login answered ${res.status}: ${JSON.stringify(res.body)}`);
      }
      return new URL(res.body.url);
    };
    const startInBrowser = async (returnTo?: string) => {
      const query = new URLSearchParams({ redirect: "true" });
      if (returnTo !== undefined) query.set("return_to", returnTo);
      const res = await call(login, `workos-login?${query}`);
      const location = res.headers.get("location");
      const setCookie = res.headers.get("set-cookie");
      if (res.status !== 302 || !location || !setCookie) {
        throw new Error(
          `workos-login?redirect=true answered ${res.status}: ${JSON.stringify(res.body)}`,
        );
      }
      return { authorizeUrl: new URL(location), cookie: setCookie.split(";")[0], setCookie };
    };
    const approve = async (url: URL, user: Partial<WorkosEmulatorUser> = {}) => {
      const location = new URL(
        await emulator.signIn(url.href, { email: uniqueEmail(), emailVerified: true, ...user }),
      );
      return callbackPath(location);
    };
    await test({
      emulator,
      deps,
      login,
      callback,
      authorizeUrl,
      startInBrowser,
      approve,
      async signIn({ returnTo, user } = {}) {
        return call(callback, await approve(await authorizeUrl(returnTo), user));
      },
    });
  } finally {
    await emulator.close();
  }
}

/** `workos-callback?…` from AuthKit's redirect to WORKOS_REDIRECT_URI. */
export function callbackPath(location: URL): string {
  if (location.href.split("?")[0] !== redirectUri) {
    throw new Error(`AuthKit redirected to ${location.origin}${location.pathname}`);
  }
  return `workos-callback${location.search}`;
}

/** The parameters in a redirect's fragment, and the URL before it. */
export function fragmentOf(
  location: string | null,
): { base: string; params: Record<string, string> } {
  if (!location) throw new Error("no Location header");
  const hash = location.indexOf("#");
  if (hash < 0) throw new Error("Location has no fragment");
  return {
    base: location.slice(0, hash),
    params: Object.fromEntries(new URLSearchParams(location.slice(hash + 1))),
  };
}

export interface RowCounts {
  persons: number;
  sessions: number;
}

/** Every person and session in the database (test files run one at a time). */
export async function countRows(): Promise<RowCounts> {
  const [row] = await testSql()`
    select (select count(*)::int from identity.person) as persons,
           (select count(*)::int from identity.session) as sessions`;
  return { persons: row.persons, sessions: row.sessions };
}
