/**
 * The outbox's email templates, rendered to a subject, an HTML body and a plain-text alternative
 * carrying the same information. Pure: no I/O, no clock, no imports.
 *
 * Every value taken from the payload is user input (workspace and display names are typed by
 * people), so each one is cleaned before use: control characters (CR and LF above all, so a
 * subject can never smuggle a header) and invisible bidirectional overrides are removed, long
 * values are cut, and the HTML escapes `& < > " '`. A missing or ill-typed field falls back to a
 * safe default rather than throwing: a half-filled outbox row still yields a sendable email.
 */

/** The templates an outbox row can name. */
export type EmailTemplate = "welcome" | "invitation";

/** A rendered email, ready for Resend's `subject`, `html` and `text` fields. */
export interface RenderedEmail {
  subject: string;
  html: string;
  text: string;
}

/** Where the email points and to whom it goes. */
export interface RenderEmailOptions {
  /** `SITE_URL`, an http(s) URL; links are built under it. */
  siteUrl: string;
  /** The recipient, named in the invitation so the reader signs in with the right address. */
  toEmail: string;
}

const EMAIL_TEMPLATES: readonly EmailTemplate[] = ["welcome", "invitation"];
const MAX_NAME_CHARS = 200; // longer names are cut, with an ellipsis, to keep subjects sane
const ROLES = new Set(["owner", "admin", "member"]);
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
// C0 and C1 controls (CR, LF, tab, NUL…), DEL, the Unicode line and paragraph separators, and the
// bidirectional marks and overrides that can make a name display as something else.
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]+/g;
const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/**
 * Tells whether `value` names a template {@linkcode renderEmail} knows, so a worker can set aside
 * an outbox row with an unknown template instead of letting `renderEmail` throw.
 *
 * @example
 * ```ts
 * isEmailTemplate("welcome"); // true
 * isEmailTemplate("newsletter"); // false
 * ```
 */
export function isEmailTemplate(value: unknown): value is EmailTemplate {
  return (EMAIL_TEMPLATES as readonly unknown[]).includes(value);
}

/**
 * Renders an outbox row's template with its jsonb `payload`.
 *
 * - `welcome`: `{ workspace_id, workspace_name, display_name? }`.
 * - `invitation`: `{ invitation_id, workspace_id, workspace_name, inviter_display_name,
 *   role, expires_at }`.
 *
 * Never throws on the payload; throws a `TypeError` for an unknown template or a `siteUrl` that is
 * not an http(s) URL, both programmer errors.
 *
 * @example
 * ```ts
 * const email = renderEmail(
 *   "welcome",
 *   { workspace_id: "…", workspace_name: "Acme", display_name: "Ada" },
 *   { siteUrl: "https://app.example.com", toEmail: "ada@example.com" },
 * );
 * email.subject; // "Welcome to Acme"
 * ```
 */
export function renderEmail(
  template: EmailTemplate,
  payload: Record<string, unknown>,
  options: RenderEmailOptions,
): RenderedEmail {
  const site = siteBase(options.siteUrl);
  const fields: Record<string, unknown> =
    typeof payload === "object" && payload !== null && !Array.isArray(payload) ? payload : {};
  switch (template) {
    case "welcome":
      return renderWelcome(fields, site);
    case "invitation":
      return renderInvitation(fields, site, options.toEmail);
    default:
      throw new TypeError(
        `Cannot render email: unknown template ${JSON.stringify(String(template)).slice(0, 60)}`,
      );
  }
}

function renderWelcome(payload: Record<string, unknown>, site: URL): RenderedEmail {
  const workspace = cleanName(payload.workspace_name) ?? "your workspace";
  const displayName = cleanName(payload.display_name);
  const link = new URL(site).href;
  const subject = `Welcome to ${workspace}`;
  const greeting = displayName ? `Hi ${displayName},` : "Hi,";
  const text = [
    subject,
    "",
    greeting,
    "",
    `Your account is ready and ${workspace} is waiting for you.`,
    "",
    `Sign in: ${link}`,
    "",
    "If you did not create this account, you can ignore this email.",
    "",
  ].join("\n");
  const html = layout(subject, [
    heading(subject),
    paragraph(escapeHtml(greeting)),
    paragraph(
      `Your account is ready and <strong>${escapeHtml(workspace)}</strong> is waiting for you.`,
    ),
    button(link, "Sign in"),
    linkFallback(link),
    footnote("If you did not create this account, you can ignore this email."),
  ]);
  return { subject, html, text };
}

function renderInvitation(
  payload: Record<string, unknown>,
  site: URL,
  toEmail: unknown,
): RenderedEmail {
  const workspace = cleanName(payload.workspace_name) ?? "your workspace";
  const inviter = cleanName(payload.inviter_display_name) ?? "Someone";
  const role = typeof payload.role === "string" && ROLES.has(payload.role) ? payload.role : null;
  const expiresAt = readableUtc(payload.expires_at);
  const recipient = cleanName(toEmail);
  const invitationId = cleanId(payload.invitation_id);
  const url = new URL(site);
  // encodeURIComponent rather than searchParams (which writes spaces as "+"), so that any decoder
  // the sign-in page uses reads the identifier back unchanged.
  if (invitationId) url.search = `?invitation=${encodeURIComponent(invitationId)}`;
  const link = url.href;

  const asRole = role ? ` as ${role}` : "";
  const subject = `${inviter} invited you to ${workspace}${asRole}`;
  const signInWith = recipient
    ? `To accept, sign in with this email address: ${recipient}`
    : "To accept, sign in with the email address this invitation was sent to.";
  const expiry = expiresAt ? `The invitation expires on ${expiresAt}.` : null;
  const text = [
    subject,
    "",
    "Hi,",
    "",
    `${inviter} invited you to join ${workspace}${asRole}.`,
    "",
    `Accept the invitation: ${link}`,
    signInWith,
    ...(expiry ? [expiry] : []),
    "",
    "If you were not expecting this invitation, you can ignore this email.",
    "",
  ].join("\n");

  const htmlSignInWith = recipient
    ? `To accept, sign in with this email address: <strong>${escapeHtml(recipient)}</strong>`
    : escapeHtml(signInWith);
  const html = layout(subject, [
    heading(`${inviter} invited you to ${workspace}`),
    paragraph("Hi,"),
    paragraph(
      `${escapeHtml(inviter)} invited you to join <strong>${escapeHtml(workspace)}</strong>` +
        `${escapeHtml(asRole)}.`,
    ),
    button(link, "Accept the invitation"),
    paragraph(htmlSignInWith),
    ...(expiry ? [paragraph(escapeHtml(expiry))] : []),
    linkFallback(link),
    footnote("If you were not expecting this invitation, you can ignore this email."),
  ]);
  return { subject, html, text };
}

/**
 * `siteUrl` as a base for links, with a trailing slash and no query or fragment, so that links are
 * `${siteUrl}/…` whether or not the variable ends with a slash.
 */
function siteBase(siteUrl: string): URL {
  let url: URL;
  try {
    url = new URL(siteUrl);
  } catch {
    throw new TypeError("Cannot render email: siteUrl is not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError("Cannot render email: siteUrl must be an http(s) URL");
  }
  url.search = "";
  url.hash = "";
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return url;
}

/**
 * A user-supplied name made safe for a subject or plain text: unsafe characters become spaces,
 * runs of whitespace one space, and anything past {@linkcode MAX_NAME_CHARS} is cut. Null when the
 * value is not a string or nothing is left.
 */
function cleanName(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const cleaned = value.replace(UNSAFE_CHARACTERS, " ").replace(/\s+/g, " ").trim();
  if (cleaned === "") return null;
  const characters = Array.from(cleaned); // code points, so a cut never splits a surrogate pair
  if (characters.length <= MAX_NAME_CHARS) return cleaned;
  return `${characters.slice(0, MAX_NAME_CHARS - 1).join("").trimEnd()}…`;
}

/**
 * An identifier for a link's query: a string without unsafe characters and at most
 * {@linkcode MAX_NAME_CHARS} long, else null (a cut identifier would be a wrong one).
 */
function cleanId(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const cleaned = value.replace(UNSAFE_CHARACTERS, "").trim();
  return cleaned !== "" && cleaned.length <= MAX_NAME_CHARS ? cleaned : null;
}

/** `2030-03-05T14:05:00Z` as `5 March 2030, 14:05 UTC`; null when not a valid timestamp. */
function readableUtc(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return null;
  const time = `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}`;
  return `${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()}, ${time} UTC`;
}

function pad(value: number): string {
  return String(value).padStart(2, "0");
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character]);
}

// The HTML: one centred card of inline-styled tables, which is what email clients render reliably.

const FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";

/** The page around `blocks` (already HTML); `title` is plain text and is escaped here. */
function layout(title: string, blocks: string[]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>${escapeHtml(title)}</title>
</head>
<body style="margin:0;padding:0;background-color:#f4f4f5;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f4f4f5;">
<tr>
<td align="center" style="padding:32px 16px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:560px;background-color:#ffffff;border-radius:8px;">
<tr>
<td style="padding:32px;font-family:${FONT};font-size:16px;line-height:24px;color:#18181b;">
${blocks.join("\n")}
</td>
</tr>
</table>
</td>
</tr>
</table>
</body>
</html>
`;
}

/** A title; `text` is plain text and is escaped here, as in every helper that takes `text`. */
function heading(text: string): string {
  return '<h1 style="margin:0 0 24px;font-size:22px;line-height:30px;font-weight:600;">' +
    `${escapeHtml(text)}</h1>`;
}

/** A paragraph of `html` the caller has already escaped. */
function paragraph(html: string): string {
  return `<p style="margin:0 0 16px;">${html}</p>`;
}

function button(href: string, label: string): string {
  return `<p style="margin:24px 0;"><a href="${escapeHtml(href)}" ` +
    'style="display:inline-block;padding:12px 20px;background-color:#18181b;color:#ffffff;' +
    `text-decoration:none;border-radius:6px;font-weight:600;">${escapeHtml(label)}</a></p>`;
}

function linkFallback(href: string): string {
  const escaped = escapeHtml(href);
  return '<p style="margin:0 0 16px;font-size:14px;line-height:20px;color:#52525b;">' +
    `Or paste this link into your browser: <a href="${escaped}" style="color:#18181b;">` +
    `${escaped}</a></p>`;
}

function footnote(text: string): string {
  return '<p style="margin:24px 0 0;font-size:13px;line-height:20px;color:#71717a;">' +
    `${escapeHtml(text)}</p>`;
}
