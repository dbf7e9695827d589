/**
 * The outbox email templates: what each says, where its links go, and what becomes of hostile or
 * missing payload values (escaped in HTML, cleaned in the subject and text, safe defaults).
 */
import assert from "node:assert/strict";
import {
  isEmailTemplate,
  renderEmail,
  type RenderEmailOptions,
} from "../supabase/functions/_shared/email_templates.ts";

const OPTIONS: RenderEmailOptions = {
  siteUrl: "https://app.example.com",
  toEmail: "bob@example.com",
};
const WELCOME = {
  workspace_id: "7d0c6f5e-8a4b-4f7e-9a51-0f4a3e2b1c01",
  workspace_name: "Acme",
  display_name: "Ada",
};
const INVITATION = {
  invitation_id: "3f6b2a1c-5d4e-4b8a-9c7d-2e1f0a9b8c7d",
  workspace_id: "7d0c6f5e-8a4b-4f7e-9a51-0f4a3e2b1c01",
  workspace_name: "Acme",
  inviter_display_name: "Ada Lovelace",
  role: "admin",
  expires_at: "2030-03-05T14:05:00Z",
};
const HOSTILE = `<script>alert(1)</script> "onerror=alert(2) 'x' & co`;
/** Every tag the templates write; anything else in the HTML came from a payload. */
const OWN_TAGS = new Set([
  "!doctype",
  "html",
  "head",
  "meta",
  "title",
  "body",
  "table",
  "tr",
  "td",
  "h1",
  "p",
  "strong",
  "a",
]);

function tagsOf(html: string): string[] {
  return [...html.matchAll(/<\/?([!a-z0-9]+)/gi)].map((match) => match[1].toLowerCase());
}

function hrefsOf(html: string): string[] {
  return [...html.matchAll(/href="([^"]*)"/g)].map((match) => match[1]);
}

Deno.test("welcome greets by display name and links to the site", () => {
  const email = renderEmail("welcome", WELCOME, OPTIONS);

  assert.equal(email.subject, "Welcome to Acme");
  assert.match(email.text, /^Welcome to Acme\n/);
  assert.match(email.text, /\nHi Ada,\n/);
  assert.match(email.text, /Acme is waiting for you/);
  assert.match(email.text, /\nSign in: https:\/\/app\.example\.com\/\n/);
  assert.match(email.html, /^<!doctype html>\n<html lang="en">/);
  assert.match(email.html, /<title>Welcome to Acme<\/title>/);
  assert.match(email.html, />Hi Ada,</);
  assert.match(email.html, /<strong>Acme<\/strong>/);
  assert.deepEqual(hrefsOf(email.html), ["https://app.example.com/", "https://app.example.com/"]);
});

Deno.test("welcome without a display name says a plain hello", () => {
  const email = renderEmail("welcome", { ...WELCOME, display_name: undefined }, OPTIONS);
  assert.match(email.text, /\nHi,\n/);
  assert.match(email.html, />Hi,</);
  for (const displayName of [null, "", "  \r\n ", 42, { name: "Ada" }]) {
    const fallback = renderEmail("welcome", { ...WELCOME, display_name: displayName }, OPTIONS);
    assert.match(fallback.text, /\nHi,\n/, String(displayName));
  }
});

Deno.test("welcome falls back to 'your workspace' for a missing or ill-typed name", () => {
  for (const workspaceName of [undefined, null, "", " \t ", 7, ["Acme"], { name: "Acme" }]) {
    const email = renderEmail("welcome", { ...WELCOME, workspace_name: workspaceName }, OPTIONS);
    assert.equal(email.subject, "Welcome to your workspace", String(workspaceName));
    assert.match(email.html, /<strong>your workspace<\/strong>/);
  }
});

Deno.test("a payload that is not an object renders with every default instead of throwing", () => {
  for (const payload of [null, undefined, [], "Acme", 3]) {
    const welcome = renderEmail("welcome", payload as unknown as Record<string, unknown>, OPTIONS);
    assert.equal(welcome.subject, "Welcome to your workspace");
    const invitation = renderEmail(
      "invitation",
      payload as unknown as Record<string, unknown>,
      OPTIONS,
    );
    assert.equal(invitation.subject, "Someone invited you to your workspace");
    assert.deepEqual(new Set(hrefsOf(invitation.html)), new Set(["https://app.example.com/"]));
  }
});

Deno.test("invitation names inviter, workspace, role, expiry, link and the address to use", () => {
  const email = renderEmail("invitation", INVITATION, OPTIONS);
  const link = `https://app.example.com/?invitation=${INVITATION.invitation_id}`;

  assert.equal(email.subject, "Ada Lovelace invited you to Acme as admin");
  assert.match(email.text, /^Ada Lovelace invited you to Acme as admin\n/);
  assert.ok(email.text.includes("Ada Lovelace invited you to join Acme as admin."));
  assert.ok(email.text.includes(`Accept the invitation: ${link}\n`));
  assert.ok(email.text.includes("sign in with this email address: bob@example.com"));
  assert.ok(email.text.includes("The invitation expires on 5 March 2030, 14:05 UTC."));

  assert.match(email.html, /^<!doctype html>\n<html lang="en">/);
  assert.ok(
    email.html.includes("Ada Lovelace invited you to join <strong>Acme</strong> as admin."),
  );
  assert.ok(email.html.includes("<strong>bob@example.com</strong>"));
  assert.ok(email.html.includes("The invitation expires on 5 March 2030, 14:05 UTC."));
  assert.deepEqual(hrefsOf(email.html), [link, link]);
});

Deno.test("invitation says the expiry in UTC whatever the timestamp's offset", () => {
  const email = renderEmail(
    "invitation",
    { ...INVITATION, expires_at: "2030-12-31T23:30:00-02:00" },
    OPTIONS,
  );
  assert.ok(email.text.includes("expires on 1 January 2031, 01:30 UTC."));
});

Deno.test("invitation falls back to Someone, no role and no expiry when those fields are unusable", () => {
  const email = renderEmail("invitation", {
    ...INVITATION,
    inviter_display_name: null,
    role: "superuser",
    expires_at: "next week",
  }, OPTIONS);
  assert.equal(email.subject, "Someone invited you to Acme");
  assert.ok(email.text.includes("Someone invited you to join Acme."));
  assert.doesNotMatch(email.text + email.html, /expires|superuser/);

  for (const role of ["owner", "admin", "member"]) {
    assert.ok(renderEmail("invitation", { ...INVITATION, role }, OPTIONS).subject.endsWith(role));
  }
  for (const expiresAt of [null, 1893456000000, "", "2030-13-45T99:00:00Z"]) {
    const noExpiry = renderEmail("invitation", { ...INVITATION, expires_at: expiresAt }, OPTIONS);
    assert.doesNotMatch(noExpiry.text, /expires/, String(expiresAt));
  }
});

Deno.test("invitation without a usable id links to the site root", () => {
  for (const invitationId of [undefined, null, 42, "", "x".repeat(201)]) {
    const email = renderEmail(
      "invitation",
      { ...INVITATION, invitation_id: invitationId },
      OPTIONS,
    );
    assert.deepEqual(new Set(hrefsOf(email.html)), new Set(["https://app.example.com/"]));
    assert.ok(email.text.includes("Accept the invitation: https://app.example.com/\n"));
  }
});

Deno.test("invitation URL-encodes the invitation id in its link", () => {
  const invitationId = `a b&c=d/é#"<>'`;
  const email = renderEmail("invitation", { ...INVITATION, invitation_id: invitationId }, OPTIONS);
  // The URL serialiser also percent-encodes the "'" that encodeURIComponent leaves alone.
  const expected = `https://app.example.com/?invitation=${
    encodeURIComponent(invitationId).replaceAll("'", "%27")
  }`;
  assert.ok(email.text.includes(`Accept the invitation: ${expected}\n`));
  const [href] = hrefsOf(email.html);
  const decoded = href.replaceAll("&#39;", "'").replaceAll("&amp;", "&");
  assert.equal(decoded, expected);
  assert.equal(new URL(decoded).searchParams.get("invitation"), invitationId);
});

Deno.test("links are built under SITE_URL with or without a trailing slash or a path", () => {
  const cases: [string, string][] = [
    ["https://app.example.com/", "https://app.example.com/"],
    ["https://app.example.com/base", "https://app.example.com/base/"],
    ["https://app.example.com/base/", "https://app.example.com/base/"],
    ["https://app.example.com/base?x=1#top", "https://app.example.com/base/"],
    ["http://localhost:3000", "http://localhost:3000/"],
  ];
  for (const [siteUrl, base] of cases) {
    const welcome = renderEmail("welcome", WELCOME, { ...OPTIONS, siteUrl });
    assert.deepEqual(hrefsOf(welcome.html), [base, base], siteUrl);
    const invitation = renderEmail("invitation", INVITATION, { ...OPTIONS, siteUrl });
    assert.equal(hrefsOf(invitation.html)[0], `${base}?invitation=${INVITATION.invitation_id}`);
  }
});

Deno.test("link attributes are HTML-escaped", () => {
  const email = renderEmail("welcome", WELCOME, {
    ...OPTIONS,
    siteUrl: "https://app.example.com/a'b&c",
  });
  assert.deepEqual(hrefsOf(email.html), [
    "https://app.example.com/a&#39;b&amp;c/",
    "https://app.example.com/a&#39;b&amp;c/",
  ]);
});

Deno.test('<script> and "onerror= in names are escaped in the HTML', () => {
  const payloads = [
    renderEmail("welcome", { ...WELCOME, workspace_name: HOSTILE, display_name: HOSTILE }, OPTIONS),
    renderEmail("invitation", {
      ...INVITATION,
      workspace_name: HOSTILE,
      inviter_display_name: HOSTILE,
    }, { ...OPTIONS, toEmail: `"<img src=x onerror=alert(3)>"@example.com` }),
  ];
  for (const { html } of payloads) {
    assert.deepEqual(tagsOf(html).filter((tag) => !OWN_TAGS.has(tag)), []);
    assert.ok(!html.includes("<script"));
    assert.ok(!html.includes('"onerror='));
    assert.ok(!html.includes("'x'"));
    assert.ok(
      html.includes(
        "&lt;script&gt;alert(1)&lt;/script&gt; &quot;onerror=alert(2) &#39;x&#39; &amp; co",
      ),
    );
  }
  assert.ok(
    payloads[1].html.includes("&quot;&lt;img src=x onerror=alert(3)&gt;&quot;@example.com"),
  );
});

Deno.test("hostile names stay inert plain text in the subject and the text body", () => {
  const email = renderEmail("invitation", {
    ...INVITATION,
    workspace_name: HOSTILE,
    inviter_display_name: "Eve",
  }, OPTIONS);
  assert.equal(email.subject, `Eve invited you to ${HOSTILE} as admin`);
  assert.ok(email.text.includes(`Eve invited you to join ${HOSTILE} as admin.`));
  assert.ok(!email.text.includes("&lt;"), "the text body is not HTML-escaped");
});

Deno.test("CR, LF and other control characters never reach the subject or the text", () => {
  const injected = "Acme\r\nBcc: eve@evil.test\u0000\t\u0085\u2028\u202eeviL\u2066";
  for (
    const email of [
      renderEmail(
        "welcome",
        { ...WELCOME, workspace_name: injected, display_name: injected },
        OPTIONS,
      ),
      renderEmail("invitation", {
        ...INVITATION,
        workspace_name: injected,
        inviter_display_name: injected,
      }, { ...OPTIONS, toEmail: "bob@example.com\r\nCc: eve@evil.test" }),
    ]
  ) {
    // deno-lint-ignore no-control-regex -- looking for control characters is the point
    assert.doesNotMatch(email.subject, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202e\u2066]/);
    assert.ok(email.subject.includes("Acme Bcc: eve@evil.test eviL"));
    const textLines = email.text.split("\n");
    // deno-lint-ignore no-control-regex -- only the template's own line breaks may remain
    assert.ok(textLines.every((line) => !/[\u0000-\u001f\u007f-\u009f\u2028-\u202e]/.test(line)));
    assert.ok(!textLines.some((line) => line.startsWith("Bcc:") || line.startsWith("Cc:")));
    // deno-lint-ignore no-control-regex -- looking for control characters is the point
    assert.doesNotMatch(email.html, /[\r\u0000\u2028\u202e]/);
  }
});

Deno.test("names longer than 200 characters are cut, never inside a character", () => {
  const long = "😀".repeat(300);
  const email = renderEmail("welcome", { ...WELCOME, workspace_name: long }, OPTIONS);
  const name = email.subject.slice("Welcome to ".length);
  assert.equal(Array.from(name).length, 200);
  assert.ok(name.endsWith("😀…"));
  assert.ok(email.html.includes(name));

  const exact = "a".repeat(200);
  assert.equal(
    renderEmail("welcome", { ...WELCOME, workspace_name: exact }, OPTIONS).subject,
    `Welcome to ${exact}`,
  );
});

Deno.test("renderEmail throws a TypeError for an unknown template", () => {
  assert.throws(
    () => renderEmail("newsletter" as "welcome", WELCOME, OPTIONS),
    { name: "TypeError", message: 'Cannot render email: unknown template "newsletter"' },
  );
});

Deno.test("renderEmail throws a TypeError for a SITE_URL that is not http(s)", () => {
  for (const siteUrl of ["app.example.com", "", "javascript:alert(1)", "ftp://example.com"]) {
    assert.throws(() => renderEmail("welcome", WELCOME, { ...OPTIONS, siteUrl }), TypeError);
  }
});

Deno.test("isEmailTemplate accepts exactly the known templates", () => {
  assert.equal(isEmailTemplate("welcome"), true);
  assert.equal(isEmailTemplate("invitation"), true);
  for (const value of ["Welcome", "newsletter", "", null, undefined, 1, ["welcome"]]) {
    assert.equal(isEmailTemplate(value), false, String(value));
  }
});
