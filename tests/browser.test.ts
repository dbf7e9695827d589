/// <reference lib="dom" />
/**
 * The local console in a real browser (SPEC §12): Chromium, driven by playwright-core, against
 * `npm run dev` started as a developer starts it. One server and one browser for all the steps,
 * which follow a person through the console: WorkOS sign-in through the emulator, `me`, a second
 * tab sharing the session and its one refresh, sign-out of both tabs, OTP sign-in with the code the
 * page shows; at 390 px wide (a phone) without horizontal scrolling. Screenshots go to
 * `screenshotDir`.
 */
import assert from "node:assert/strict";
import type { BrowserContext, Page } from "playwright-core";
import { consoleRoutes, devCodes } from "../local/console.ts";
import {
  browserSkipReason,
  launchBrowser,
  screenshotDir,
  startDevServer,
} from "./support/browser.ts";

const skipReason = browserSkipReason();
if (skipReason) console.log(`browser tests skipped: ${skipReason}`);

const phone = { width: 390, height: 844 };
const refreshPath = "/functions/v1/refresh";

Deno.test({
  name:
    "the local console signs in with WorkOS and OTP, shares one refresh between tabs, signs out",
  ignore: skipReason !== null,
  // playwright keeps its pipe to Chromium and timers of its own between steps.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await Deno.mkdir(screenshotDir, { recursive: true });
    const server = await startDevServer();
    const browser = await launchBrowser();
    const problems: string[] = [];
    // Each step builds on the one before: after a failure the rest would only fail with it.
    let failed = false;
    const step = async (name: string, fn: () => void | Promise<void>) => {
      if (failed || !(await t.step(name, fn))) failed = true;
    };
    try {
      const context = await browser.newContext({ viewport: phone });
      context.setDefaultTimeout(15_000);
      const refreshes: string[] = [];
      context.on("request", (request) => {
        if (request.method() === "POST" && new URL(request.url()).pathname === refreshPath) {
          refreshes.push(request.url());
        }
      });
      const tabA = await openConsole(context, server.url, problems);
      const email = `ada.${crypto.randomUUID().slice(0, 8)}@example.com`;
      const otpEmail = `grace.${crypto.randomUUID().slice(0, 8)}@example.com`;

      await step("the signed-out page fits 390 px and has a favicon", async () => {
        await expectText(tabA, "#status", "Signed out");
        await expectNoHorizontalScroll(tabA);
        const favicon = await tabA.evaluate(async () => {
          const link = document.querySelector<HTMLLinkElement>("link[rel=icon]");
          const response = await fetch(link?.href ?? "/missing");
          return { status: response.status, type: response.headers.get("content-type") };
        });
        assert.deepEqual(favicon, { status: 200, type: "image/svg+xml" });
        await shoot(tabA, "1-signed-out");
      });

      await step(
        "WorkOS sign-in through the emulator comes back signed in, and me answers",
        async () => {
          // Cancelled at the emulator first: the page says so, in a banner that wraps.
          await tabA.click("#workos");
          await tabA.waitForURL(/\/user_management\/authorize\?/);
          await tabA.click("button[value=deny]");
          await tabA.waitForURL(`${server.url}/`);
          await expectText(tabA, "#errors", "ACCESS_DENIED");
          await expectNoHorizontalScroll(tabA);
          await shoot(tabA, "2-workos-cancelled");

          await tabA.click("#workos");
          await tabA.waitForURL(/\/user_management\/authorize\?/);
          await expectNoHorizontalScroll(tabA);
          await tabA.fill("input[name=email]", email);
          await tabA.fill("input[name=first_name]", "Ada");
          await shoot(tabA, "3-workos-emulator");
          await tabA.click("button[value=allow]");
          await tabA.waitForURL(`${server.url}/`);
          await expectText(tabA, "#me-summary", email);
          assert.equal(new URL(tabA.url()).hash, "", "the tokens must leave the address bar");
          await expectText(tabA, "#status", "Signed in");
          // The workspaces card answers something (the list, or that the function is not there yet).
          await tabA.waitForFunction(() =>
            document.getElementById("workspaces-note")?.textContent !== "" ||
            document.querySelectorAll("#workspace-list li").length > 0
          );
          await expectNoHorizontalScroll(tabA);
          await shoot(tabA, "4-signed-in-workos");
        },
      );

      let tabB: Page | undefined;
      await step("a second tab shares the session and both share one refresh", async () => {
        tabB = await openConsole(context, server.url, problems);
        await expectText(tabB, "#status", "Signed in");
        const before = await storedSession(tabA);
        // The token nears expiry (as after 59 minutes): both tabs then need a fresh one at once.
        await tabA.evaluate((soon) => {
          const key = "platform-auth.session";
          const session = JSON.parse(localStorage.getItem(key) ?? "null");
          localStorage.setItem(key, JSON.stringify({ ...session, expires_at: soon }));
        }, Math.floor(Date.now() / 1000) + 30);
        refreshes.length = 0;
        await Promise.all([tabA.click("#me-load"), tabB.click("#me-load")]);

        const after = await waitForNewToken(tabA, before.access_token);
        for (const tab of [tabA, tabB]) {
          await tab.waitForFunction(
            (token) => document.getElementById("session-token")?.textContent === token,
            after.access_token,
          );
          await expectText(tab, "#me-summary", email);
        }
        assert.notEqual(after.refresh_token, before.refresh_token);
        await tabA.waitForTimeout(300); // a second refresh, were there one, would be out by now
        assert.equal(refreshes.length, 1, `refresh requests: ${refreshes.length}`);
        const counted = await Promise.all(
          [tabA, tabB].map((tab) => tab.textContent("#session-refreshes")),
        );
        assert.deepEqual(
          counted.map((text) => Number(/\d+/.exec(text ?? "")?.[0])).sort(),
          [0, 1],
          `one tab refreshed, the other used its result: ${counted.join(" / ")}`,
        );
        await expectText(tabB, "#events", "TOKEN_REFRESHED");
        await shoot(tabB, "5-second-tab-after-refresh");
      });

      await step("an owner invites a colleague by email and sees the invitation", async () => {
        await tabA.waitForSelector("#workspace-list li [data-current]");
        await tabA.fill("#invite input[name=email]", otpEmail);
        await tabA.selectOption("#invite select[name=role]", "member");
        await tabA.click("#invite button[type=submit]");
        await expectText(tabA, "#invitations", otpEmail);
        await expectNoHorizontalScroll(tabA);
      });

      await step("sign-out revokes the session and signs both tabs out", async () => {
        const before = await storedSession(tabA);
        await tabA.click("#signout");
        // A WorkOS session also ends at WorkOS: its logout page sends the browser back here.
        await tabA.waitForURL(`${server.url}/`);
        await expectText(tabA, "#status", "Signed out");
        await expectText(tabB!, "#status", "Signed out");
        const me = await fetch(`${server.url}/functions/v1/me`, {
          headers: { authorization: `Bearer ${before.access_token}` },
        });
        assert.equal(me.status, 401);
        assert.equal((await me.json()).code, "SESSION_REVOKED");
        await tabB!.close();
      });

      await step("OTP sign-in with the code the page shows", async () => {
        await tabA.fill("#otp-email", otpEmail);
        await tabA.click("#otp-send button[type=submit]");
        const code = (await tabA.locator("#dev-code-value").textContent({ timeout: 10_000 }))
          ?.trim() ?? "";
        assert.match(code, /^\d{6}$/);
        await expectNoHorizontalScroll(tabA);
        await shoot(tabA, "6-otp-code-shown");

        // A wrong code first: the error is shown, wraps, and leaves the form usable.
        await tabA.fill("#otp-code", code === "000000" ? "111111" : "000000");
        await tabA.click("#otp-verify button[type=submit]");
        await expectText(tabA, "#errors", "INVALID_CODE");
        await expectNoHorizontalScroll(tabA);
        await shoot(tabA, "7-otp-wrong-code");

        await tabA.click("#dev-code-use");
        assert.equal(await tabA.inputValue("#otp-code"), code);
        await tabA.click("#otp-verify button[type=submit]");
        await expectText(tabA, "#status", otpEmail);
        await expectText(tabA, "#me-summary", otpEmail);
        await expectNoHorizontalScroll(tabA);
      });

      await step(
        "the invitation was accepted at sign-in and the other workspace is one switch away",
        async () => {
          await expectText(tabA, "#me-summary", "2 workspaces");
          const other = tabA.locator("#workspace-list li", { hasNotText: "current" });
          await other.getByRole("button", { name: "Switch" }).click();
          await expectText(tabA, "#session-workspace", "(member)");
          await tabA.locator("#workspace-list li", { hasText: "current" }).filter({
            hasText: "member",
          })
            .waitFor();
          await expectText(tabA, "#invitations-note", "Owners and admins");
          // The invitation email, delivered by the dev server's dispatch loop every few seconds.
          await tabA.locator("#mail li", { hasText: "invited you" }).waitFor({ timeout: 20_000 });
          await expectNoHorizontalScroll(tabA);
          await shoot(tabA, "8-signed-in-otp-switched", true);
        },
      );

      await step("desktop width and dark mode render (screenshots for review)", async () => {
        await tabA.setViewportSize({ width: 1280, height: 900 });
        // The mailbox keeps filling (welcome emails): open the invitation's own HTML version.
        const invitation = tabA.locator("#mail li", { hasText: "invited you" }).first();
        await invitation.locator("summary", { hasText: "invited you" }).click();
        await invitation.locator("details details summary").first().click();
        await shoot(tabA, "9-desktop", true);
        await tabA.emulateMedia({ colorScheme: "dark" });
        await shoot(tabA, "10-desktop-dark", true);
      });

      await step("the page logs no script or policy errors", () => {
        assert.deepEqual(problems, []);
      });
      await context.close();
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      if (failed) console.error(`--- npm run dev printed ---\n${server.output().slice(-4000)}`);
      await browser.close();
      await server.close();
    }
  },
});

// ---- the console's routes, without a browser ----

const functionsUrl = "http://127.0.0.1:54321/functions/v1";

async function routesWithCode() {
  const codes = devCodes();
  codes.record("Ada@Example.com", "111111");
  codes.record("grace@example.com", "222222");
  codes.record("ada@example.com", "333333");
  const routes = await consoleRoutes({
    functionsUrl,
    publishableKey: "sb_publishable_test",
    codes: codes.list,
  });
  const get = (path: string, host = "127.0.0.1:54321") =>
    routes(new Request(`http://127.0.0.1:54321${path}`, { headers: { host } }));
  return { routes, get };
}

Deno.test("the console answers only loopback hosts, so a DNS-rebinding page cannot read codes", async () => {
  const { get } = await routesWithCode();
  for (const host of ["attacker.example:54321", "attacker.example", "127.0.0.1.nip.io:54321"]) {
    const answer = await get("/_dev/codes?email=ada@example.com", host);
    assert.equal(answer?.status, 403, host);
    assert.doesNotMatch(await answer!.text(), /333333/);
  }
  const config = await get("/_dev/config.json", "attacker.example");
  assert.equal(config?.status, 403);
  await config?.body?.cancel();
  for (const host of ["127.0.0.1:54321", "localhost:54321", "[::1]:54321"]) {
    const answer = await get("/_dev/codes", host);
    assert.equal(answer?.status, 200, host);
    await answer?.body?.cancel();
  }
});

Deno.test("/_dev/codes lists the asked address's codes only, newest first, case-insensitively", async () => {
  const { get } = await routesWithCode();
  const answer = await get("/_dev/codes?email=ADA@example.com");
  assert.equal(answer?.headers.get("cache-control"), "no-store");
  const { codes } = await answer!.json();
  assert.deepEqual(codes.map((entry: { code: string }) => entry.code), ["333333", "111111"]);
});

Deno.test("the console leaves the functions and other paths to the dev server", async () => {
  const { get, routes } = await routesWithCode();
  assert.equal(await get("/functions/v1/me"), null);
  assert.equal(await get("/_dev/mail"), null);
  assert.equal(await get("/nothing-here"), null);
  const post = await routes(new Request("http://127.0.0.1:54321/", { method: "POST" }));
  assert.equal(post?.status, 405);
});

Deno.test("the page allows scripts from itself only and lives on the functions' host", async () => {
  const { get } = await routesWithCode();
  const page = await get("/");
  assert.equal(page?.status, 200);
  const policy = page!.headers.get("content-security-policy") ?? "";
  assert.match(policy, /script-src 'self';/);
  assert.match(policy, /connect-src 'self' http:\/\/127\.0\.0\.1:54321;/);
  assert.match(policy, /frame-ancestors 'none'/);
  assert.match(await page!.text(), /<meta name="viewport"/);
  // localhost has its own storage: send the browser where WorkOS sign-ins come back to.
  const elsewhere = await get("/", "localhost:54321");
  assert.equal(elsewhere?.status, 302);
  assert.equal(elsewhere?.headers.get("location"), "http://127.0.0.1:54321/");

  const script = await get("/console.js");
  assert.match(script?.headers.get("content-type") ?? "", /^text\/javascript/);
  const source = await script!.text();
  assert.match(source, /createAuthClient|function createAuthClient/);
  assert.doesNotMatch(source, /could not be bundled/);
  const config = await (await get("/_dev/config.json"))!.json();
  assert.deepEqual(config, {
    functions_url: functionsUrl,
    publishable_key: "sb_publishable_test",
    mail_url: "/_dev/mail",
    codes: true,
  });
});

/** A new tab on the console, its console errors and page errors collected in `problems`. */
async function openConsole(
  context: BrowserContext,
  url: string,
  problems: string[],
): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    // An answered 4xx (the wrong code) is logged by Chromium as a failed resource: expected.
    if (message.type() === "error" && !/status of 4\d\d/.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  await page.goto(`${url}/`);
  await page.waitForFunction(() => document.getElementById("status")?.textContent !== "Loading…");
  const fatal = page.locator("#fatal");
  if (await fatal.isVisible()) {
    throw new Error(`The console did not start: ${await fatal.textContent()}`);
  }
  return page;
}

async function expectText(page: Page, selector: string, text: string): Promise<void> {
  try {
    await page.locator(selector).filter({ hasText: text }).first().waitFor({ state: "attached" });
  } catch (error) {
    const seen = await page.locator(selector).first().textContent().catch(() => null);
    const errors = await page.locator("#errors").textContent().catch(() => null);
    throw new Error(
      `${selector} never showed ${JSON.stringify(text)}; it shows ${JSON.stringify(seen)}` +
        (errors ? `; errors: ${errors}` : ""),
      { cause: error },
    );
  }
}

async function expectNoHorizontalScroll(page: Page): Promise<void> {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= phone.width, `${page.url()} scrolls sideways: ${width} px wide`);
}

interface StoredSession {
  access_token: string;
  refresh_token: string;
  expires_at: number;
}

async function storedSession(page: Page): Promise<StoredSession> {
  const raw = await page.evaluate(() => localStorage.getItem("platform-auth.session"));
  assert.ok(raw, "no session in localStorage");
  return JSON.parse(raw) as StoredSession;
}

async function waitForNewToken(page: Page, old: string): Promise<StoredSession> {
  await page.waitForFunction((token) => {
    const raw = localStorage.getItem("platform-auth.session");
    return raw !== null && JSON.parse(raw).access_token !== token;
  }, old);
  return await storedSession(page);
}

async function shoot(page: Page, name: string, fullPage = false): Promise<void> {
  await page.screenshot({ path: `${screenshotDir}/${name}.png`, fullPage });
}
