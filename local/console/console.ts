/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The local console's page script, bundled with the client for browsers by `local/console.ts`.
 * Everything goes through `client/mod.ts` with `localStorage`, so every tab of the console shares
 * one session (and one refresh). Plain DOM, no framework; data is only ever set as text.
 */
import {
  type AuthClient,
  AuthError,
  type AuthEvent,
  createAuthClient,
  DEFAULT_STORAGE_KEY,
  type Invitation,
  type Member,
  type Person,
  type Role,
  type Session,
  type WorkspacesResponse,
} from "../../client/mod.ts";

/** What `/_dev/config.json` answers. */
interface DevConfig {
  functions_url: string;
  publishable_key: string;
  mail_url: string | null;
  codes: boolean;
}

/** An email of the mailbox, in the shapes the Resend emulator may answer. */
interface MailItem {
  id?: string;
  from?: string;
  to?: string | string[];
  subject?: string;
  text?: string;
  html?: string;
  createdAt?: string;
  created_at?: string;
}

type Workspace = WorkspacesResponse["workspaces"][number];

const mailPollMilliseconds = 4000;
const codePollMilliseconds = 500;
const codePollAttempts = 20;
const refreshMarginSeconds = 60; // the client refreshes a token with less than this left
const refreshRetryMilliseconds = 30_000;
const roles: Role[] = ["owner", "admin", "member"];

let auth: AuthClient;
let config: DevConfig;
let session: Session | null = null;
/** The person as `me` last answered, for sessions that only know an id (WorkOS sign-ins). */
let knownPerson: Person | null = null;
let workspaces: Workspace[] | null = null;
let selectedWorkspace: string | null = null;
let refreshRequests = 0;
let otpMethodId: string | null = null;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let mailSignature = "";

main().catch((error) => {
  const box = byId("fatal");
  box.hidden = false;
  box.textContent = `The console could not start: ${describe(error)}`;
  byId("status").textContent = "Not started";
});

async function main(): Promise<void> {
  config = await loadConfig();
  byId("functions-url").textContent = config.functions_url;
  auth = createAuthClient({
    functionsUrl: config.functions_url,
    apiKey: config.publishable_key,
    storage: localStorage,
    fetch: countingFetch,
  });
  auth.onAuthStateChange(onAuthEvent);
  wire();

  const back = await auth.consumeWorkOSCallback();
  if (back?.error) {
    showError(
      "WorkOS sign-in failed",
      new AuthError(back.error_description, {
        status: 0,
        code: back.error,
      }),
    );
  }
  session = await auth.getSession();
  render();
  const invited = takeInvitationParameter();
  if (invited && session) {
    // Invitations are accepted at sign-in or refresh: refresh now rather than within the hour.
    notice("Checking your invitations: an invitation to this account is accepted now.");
    await refreshNow().catch((error) => showError("Refreshing the session failed", error));
  } else if (invited) {
    notice(
      "You were invited: sign in with the address the invitation was sent to, and it is accepted.",
    );
  }
  if (session && !back?.session) loadSignedIn();

  loadMail();
  setInterval(tick, 1000);
  setInterval(() => {
    if (document.visibilityState === "visible") loadMail();
  }, mailPollMilliseconds);
}

async function loadConfig(): Promise<DevConfig> {
  const response = await fetch("/_dev/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`/_dev/config.json answered ${response.status}`);
  return await response.json() as DevConfig;
}

/** `fetch` for the client that counts the refresh requests this tab sends. */
function countingFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const url = input instanceof Request ? input.url : String(input);
  if (/\/refresh(\?|$)/.test(url) && (init?.method ?? "GET") === "POST") refreshRequests++;
  return fetch(input, init);
}

function onAuthEvent(event: AuthEvent, next: Session | null): void {
  session = next;
  logEvent(event);
  render();
  if (event === "SIGNED_IN") {
    byId("errors").replaceChildren(); // what went wrong before signing in is behind us
    byId("notice").hidden = true;
    loadSignedIn();
  }
  if (event === "WORKSPACE_SWITCHED") {
    loadWorkspaces();
    loadMe();
  }
  if (event === "SIGNED_OUT") {
    knownPerson = null;
    workspaces = null;
    selectedWorkspace = null;
    byId("me-json").hidden = true;
    byId("me-summary").textContent = "Not called yet.";
  }
}

function loadSignedIn(): void {
  loadMe();
  loadWorkspaces();
}

// ---- wiring ----

function wire(): void {
  byId("workos").addEventListener(
    "click",
    (event) =>
      busy(event, "Signing in with WorkOS", async () => {
        await auth.signInWithWorkOS({ returnTo: "/" });
      }),
  );

  byId<HTMLFormElement>("otp-send").addEventListener("submit", (event) => {
    event.preventDefault();
    const email = byId<HTMLInputElement>("otp-email").value.trim();
    busy(event, "Sending the code", async () => {
      const sentAt = Date.now();
      const { method_id } = await auth.sendOtp(email);
      otpMethodId = method_id;
      byId("otp-sent-to").textContent = email;
      byId("otp-send").hidden = true;
      byId("otp-verify-box").hidden = false;
      byId<HTMLInputElement>("otp-code").value = "";
      byId<HTMLInputElement>("otp-code").focus();
      if (config.codes) showDevCode(email, sentAt);
    });
  });

  byId<HTMLFormElement>("otp-verify").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = byId<HTMLInputElement>("otp-code").value.trim();
    busy(event, "Checking the code", async () => {
      if (!otpMethodId) throw new Error("Send a code first");
      await auth.verifyOtp(otpMethodId, code);
      resetOtp();
    });
  });
  byId("otp-restart").addEventListener("click", resetOtp);
  byId("dev-code-use").addEventListener("click", () => {
    const input = byId<HTMLInputElement>("otp-code");
    input.value = byId("dev-code-use").dataset.code ?? "";
    input.focus();
  });

  byId("refresh").addEventListener("click", (event) => busy(event, "Refreshing", refreshNow));

  byId("signout").addEventListener("click", (event) =>
    busy(event, "Signing out", async () => {
      const { logout_url } = await auth.signOut();
      // A WorkOS session ends at WorkOS too; its logout page sends the browser back here.
      if (logout_url) location.href = logout_url;
    }));

  byId("me-load").addEventListener("click", (event) => busy(event, "Calling me", loadMeNow));
  byId("workspaces-load").addEventListener(
    "click",
    (event) => busy(event, "Loading workspaces", loadWorkspacesNow),
  );
  byId("mailbox-load").addEventListener("click", () => {
    mailSignature = "";
    loadMail();
  });

  byId<HTMLFormElement>("invite").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const workspaceId = selectedWorkspace;
    if (!workspaceId) return;
    busy(event, "Inviting", async () => {
      await auth.invite(workspaceId, {
        email: String(data.get("email") ?? "").trim(),
        role: String(data.get("role")) as Role,
      });
      form.reset();
      await loadDetail();
      setTimeout(loadMail, 1000);
    });
  });
}

/** Runs an action with its button disabled; a failure becomes an error banner. */
function busy(event: Event, what: string, action: () => Promise<void>): void {
  const target = event.currentTarget;
  const form = target instanceof HTMLFormElement ? target : null;
  const buttons = form
    ? [...form.querySelectorAll("button")]
    : target instanceof HTMLButtonElement
    ? [target]
    : [];
  for (const button of buttons) button.disabled = true;
  action().catch((error) => showError(`${what} failed`, error)).finally(() => {
    for (const button of buttons) button.disabled = false;
  });
}

/**
 * Refreshes the session now. The client refreshes only tokens near expiry, so this marks the
 * stored one so, and then goes the way of any token near expiry: through the client's single
 * refresh (a Web Lock across tabs).
 */
async function refreshNow(): Promise<void> {
  const stored = await auth.getSession();
  if (!stored) return;
  const soon = Math.floor(Date.now() / 1000) + refreshMarginSeconds - 1;
  localStorage.setItem(
    DEFAULT_STORAGE_KEY,
    JSON.stringify({ ...stored, expires_at: Math.min(stored.expires_at, soon) }),
  );
  await auth.accessToken();
}

/** Whether the page was opened from an invitation email (`/?invitation=…`); clears the link. */
function takeInvitationParameter(): boolean {
  const url = new URL(location.href);
  if (!url.searchParams.has("invitation")) return false;
  url.searchParams.delete("invitation");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
  return true;
}

function notice(text: string): void {
  const box = byId("notice");
  box.textContent = text;
  box.hidden = false;
}

// ---- OTP ----

function resetOtp(): void {
  otpMethodId = null;
  byId("otp-send").hidden = false;
  byId("otp-verify-box").hidden = true;
  byId("dev-code").hidden = true;
}

/** Shows the code the Stytch emulator issued for `email` after `sentAt` (dev only). */
async function showDevCode(email: string, sentAt: number): Promise<void> {
  const box = byId("dev-code");
  const text = byId("dev-code-text");
  const use = byId("dev-code-use");
  box.hidden = false;
  use.hidden = true;
  text.textContent = "Waiting for the emulated email…";
  for (let attempt = 0; attempt < codePollAttempts; attempt++) {
    const response = await fetch(`/_dev/codes?email=${encodeURIComponent(email)}`, {
      cache: "no-store",
    });
    const { codes } = await response.json() as { codes: { code: string; sent_at: string }[] };
    // A second of slack: the emulator's clock and this page's are one machine's, not one call's.
    const fresh = codes.find((entry) => Date.parse(entry.sent_at) >= sentAt - 1000);
    if (fresh) {
      text.replaceChildren(
        `Emulated email to ${email}: code `,
        el("strong", { id: "dev-code-value" }, fresh.code),
      );
      use.dataset.code = fresh.code;
      use.hidden = false;
      return;
    }
    await sleep(codePollMilliseconds);
  }
  text.textContent = "No emulated code arrived: is STYTCH_PROJECT_ID set to a real project?";
}

// ---- session ----

function render(): void {
  const signedIn = session !== null;
  const status = byId("status");
  status.classList.toggle("signed-in", signedIn);
  status.textContent = signedIn ? `Signed in as ${personLabel(session)}` : "Signed out";
  byId("signin").hidden = signedIn;
  for (const id of ["session", "me", "workspaces"]) byId(id).hidden = !signedIn;
  if (!session) {
    clearTimeout(refreshTimer);
    return;
  }
  const claims = claimsOf(session.access_token);
  showPerson();
  byId("session-workspace").textContent = workspaceLabel(claims);
  byId("session-token").textContent = session.access_token;
  byId("session-claims").textContent = JSON.stringify(claims, null, 2);
  tick();
  scheduleRefresh();
}

/** Who is signed in, in a few words: the email, else the name, else the id. */
function personLabel(current: Session | null): string {
  if (!current) return "";
  const person = current.person ??
    (knownPerson?.id === current.person_id ? knownPerson : null);
  return person?.email ?? person?.display_name ?? current.person_id ?? "unknown person";
}

/** The person's name and email on two lines, or their id while neither is known. */
function showPerson(): void {
  const person = session?.person ??
    (knownPerson?.id === session?.person_id ? knownPerson : null);
  const box = byId("session-person");
  if (!person) {
    box.textContent = session?.person_id ?? "unknown person";
    return;
  }
  box.replaceChildren(
    person.display_name ?? person.email ?? person.id,
    person.display_name && person.email ? el("small", { class: "muted" }, person.email) : "",
  );
}

function workspaceLabel(claims: Record<string, unknown> | null): string {
  const metadata = (claims?.app_metadata ?? {}) as {
    workspace_id?: string;
    workspace_role?: string;
  };
  if (!metadata.workspace_id) return "none";
  const known = workspaces?.find((workspace) => workspace.id === metadata.workspace_id);
  const name = known?.name ?? metadata.workspace_id;
  return metadata.workspace_role ? `${name} (${metadata.workspace_role})` : name;
}

/** Every second: the access token's countdown and this tab's refresh count. */
function tick(): void {
  byId("session-refreshes").textContent = `${refreshRequests} requested by this tab`;
  if (!session) return;
  const left = Math.round(session.expires_at - Date.now() / 1000);
  byId("session-expiry").textContent = left > 0
    ? `expires in ${duration(left)}`
    : `expired ${duration(-left)} ago`;
}

/**
 * Asks the client for a token when the current one nears expiry, so an idle console stays signed
 * in. Every open tab does this at the same moment; the client's lock makes it one refresh.
 */
function scheduleRefresh(): void {
  clearTimeout(refreshTimer);
  if (!session) return;
  const dueMilliseconds = (session.expires_at - refreshMarginSeconds) * 1000 - Date.now();
  refreshTimer = setTimeout(() => {
    auth.accessToken().catch((error) => {
      showError("Refreshing the session failed", error);
      refreshTimer = setTimeout(scheduleRefresh, refreshRetryMilliseconds);
    });
  }, Math.max(0, Math.min(dueMilliseconds, 2 ** 31 - 1)));
}

function logEvent(event: AuthEvent): void {
  const list = byId("events");
  list.prepend(el("li", {}, `${new Date().toLocaleTimeString()} ${event}`));
  while (list.children.length > 8) list.lastElementChild?.remove();
}

// ---- me ----

function loadMe(): void {
  loadMeNow().catch((error) => showError("Calling me failed", error));
}

async function loadMeNow(): Promise<void> {
  const me = await auth.me();
  knownPerson = me.person;
  if (session) {
    byId("status").textContent = `Signed in as ${personLabel(session)}`;
    showPerson();
  }
  const count = me.workspaces.length;
  byId("me-summary").textContent = `${me.person.email ?? me.person.id} · ${count} workspace${
    count === 1 ? "" : "s"
  }`;
  const pre = byId("me-json");
  pre.textContent = JSON.stringify(me, null, 2);
  pre.hidden = false;
}

// ---- workspaces ----

function loadWorkspaces(): void {
  loadWorkspacesNow().catch((error) => showError("Loading workspaces failed", error));
}

async function loadWorkspacesNow(): Promise<void> {
  const note = byId("workspaces-note");
  try {
    workspaces = (await auth.workspaces()).workspaces;
  } catch (error) {
    if (isMissingFunction(error)) {
      workspaces = null;
      note.textContent = "The workspaces function is not on this server yet (404).";
      byId("workspace-list").replaceChildren();
      byId("workspace-detail").hidden = true;
      return;
    }
    throw error;
  }
  note.textContent = workspaces.length ? "" : "No workspaces.";
  byId("workspace-list").replaceChildren(...workspaces.map(workspaceItem));
  if (session) {
    byId("session-workspace").textContent = workspaceLabel(claimsOf(session.access_token));
  }
  if (selectedWorkspace && !workspaces.some((workspace) => workspace.id === selectedWorkspace)) {
    selectedWorkspace = null;
  }
  selectedWorkspace ??= workspaces.find((workspace) => workspace.current)?.id ?? null;
  await loadDetail();
}

function workspaceItem(workspace: Workspace): HTMLElement {
  const actions = el("div", { class: "actions" });
  if (!workspace.current) {
    actions.append(button("Switch", "Switching workspace", async () => {
      selectedWorkspace = workspace.id; // its members, once the switch reloads the list
      await auth.switchWorkspace(workspace.id);
    }));
  }
  actions.append(button("Members", "Loading members", async () => {
    selectedWorkspace = workspace.id;
    await loadDetail();
  }));
  return el(
    "li",
    { "data-workspace": workspace.id },
    el(
      "div",
      { class: "who" },
      workspace.name,
      " ",
      workspace.current ? el("span", { class: "tag", "data-current": "" }, "current") : "",
      el("small", {}, `${workspace.role} · ${workspace.id}`),
    ),
    actions,
  );
}

/** Members and invitations of the selected workspace. */
async function loadDetail(): Promise<void> {
  const detail = byId("workspace-detail");
  const workspace = workspaces?.find((candidate) => candidate.id === selectedWorkspace);
  if (!workspace) {
    detail.hidden = true;
    return;
  }
  detail.hidden = false;
  byId("detail-name").textContent = workspace.name;
  const canManage = workspace.role === "owner" || workspace.role === "admin";
  byId("invite").hidden = !canManage;

  const [members, invitations] = await Promise.allSettled([
    auth.members(workspace.id),
    canManage ? auth.invitations(workspace.id) : Promise.resolve({ invitations: [] }),
  ]);
  if (members.status === "fulfilled") {
    byId("members-note").textContent = "";
    byId("members").replaceChildren(
      ...members.value.members.map((member) => memberItem(workspace, member, canManage)),
    );
  } else {
    byId("members").replaceChildren();
    byId("members-note").textContent = describe(members.reason);
  }
  if (invitations.status === "fulfilled") {
    const open = invitations.value.invitations;
    byId("invitations-note").textContent = canManage
      ? (open.length ? "" : "No open invitations.")
      : "Owners and admins see and send invitations.";
    byId("invitations").replaceChildren(
      ...open.map((invitation) => invitationItem(workspace, invitation)),
    );
  } else {
    byId("invitations").replaceChildren();
    byId("invitations-note").textContent = describe(invitations.reason);
  }
}

function memberItem(workspace: Workspace, member: Member, canManage: boolean): HTMLElement {
  const isMe = member.person_id === session?.person_id;
  const actions = el("div", { class: "actions" });
  if (canManage) {
    const select = el("select", { "aria-label": `Role of ${member.email ?? member.person_id}` });
    for (const role of roles) {
      const option = el("option", { value: role }, role);
      option.selected = role === member.role;
      select.append(option);
    }
    select.addEventListener("change", () => {
      select.disabled = true;
      auth.updateMember(workspace.id, member.person_id, { role: select.value as Role })
        .then(() => loadWorkspacesNow())
        .catch((error) => {
          select.value = member.role;
          showError("Changing the role failed", error);
        })
        .finally(() => select.disabled = false);
    });
    actions.append(select);
  }
  if (canManage || isMe) {
    actions.append(confirmButton(isMe ? "Leave" : "Remove", async () => {
      await auth.removeMember(workspace.id, member.person_id);
      await loadWorkspacesNow();
      if (isMe) loadMe();
    }));
  }
  return el(
    "li",
    {},
    el(
      "div",
      { class: "who" },
      member.display_name ?? member.email ?? member.person_id,
      isMe ? " (you)" : "",
      el(
        "small",
        {},
        `${member.role} · ${member.email ?? "no email"} · joined ${
          new Date(member.joined_at).toLocaleDateString()
        }`,
      ),
    ),
    actions,
  );
}

function invitationItem(workspace: Workspace, invitation: Invitation): HTMLElement {
  return el(
    "li",
    {},
    el(
      "div",
      { class: "who" },
      invitation.email,
      el(
        "small",
        {},
        `${invitation.role} · expires ${new Date(invitation.expires_at).toLocaleString()}`,
      ),
    ),
    confirmButton("Revoke", async () => {
      await auth.revokeInvitation(workspace.id, invitation.id);
      await loadDetail();
    }),
  );
}

// ---- mailbox ----

async function loadMail(): Promise<void> {
  const note = byId("mailbox-note");
  if (!config.mail_url) {
    note.textContent = "This server has no email emulator.";
    return;
  }
  let mail: MailItem[];
  try {
    const response = await fetch(config.mail_url, { cache: "no-store" });
    if (response.status === 404) {
      note.textContent = `No mailbox on this server yet (GET ${config.mail_url} answered 404).`;
      return;
    }
    if (!response.ok) throw new Error(`GET ${config.mail_url} answered ${response.status}`);
    mail = mailOf(await response.json());
  } catch (error) {
    note.textContent = `The mailbox cannot be read: ${describe(error)}`;
    return;
  }
  note.textContent = mail.length ? "Emails the local Resend emulator “sent”." : "No email yet.";
  byId("mailbox-count").textContent = mail.length ? `(${mail.length})` : "";
  const signature = JSON.stringify(mail.map((item) => item.id ?? item.subject));
  if (signature === mailSignature) return; // keeps open messages open
  mailSignature = signature;
  const newestFirst = [...mail].reverse();
  byId("mail").replaceChildren(...newestFirst.map(mailItem));
}

function mailOf(body: unknown): MailItem[] {
  if (Array.isArray(body)) return body as MailItem[];
  if (body && typeof body === "object") {
    const list = Object.values(body).find(Array.isArray);
    if (list) return list as MailItem[];
  }
  return [];
}

function mailItem(mail: MailItem): HTMLElement {
  const to = Array.isArray(mail.to) ? mail.to.join(", ") : mail.to ?? "";
  const at = mail.createdAt ?? mail.created_at;
  const body = el("div", {});
  if (mail.text) body.append(el("pre", {}, mail.text));
  if (mail.html) {
    const frame = el("iframe", { title: `HTML of ${mail.subject ?? "the email"}` });
    frame.setAttribute("sandbox", ""); // no scripts, no navigation, its own origin
    frame.srcdoc = mail.html;
    body.append(el("details", {}, el("summary", {}, "HTML version"), frame));
  }
  return el(
    "li",
    {},
    el(
      "details",
      { class: "mail" },
      el(
        "summary",
        {},
        mail.subject ?? "(no subject)",
        el(
          "small",
          { class: "muted" },
          `to ${to}${at ? ` · ${new Date(at).toLocaleString()}` : ""}`,
        ),
      ),
      body,
    ),
  );
}

// ---- errors ----

/** An error banner that wraps, names what failed and quotes the server's code and request id. */
function showError(what: string, error: unknown): void {
  const details = error instanceof AuthError
    ? [
      error.code,
      error.status ? `HTTP ${error.status}` : "",
      error.requestId ? `request ${error.requestId}` : "",
    ].filter(Boolean).join(" · ")
    : "";
  const dismiss = el("button", { type: "button", class: "small", "aria-label": "Dismiss" }, "×");
  const item = el(
    "li",
    { class: "alert", role: "alert" },
    el(
      "div",
      {},
      el("strong", {}, what),
      el("span", {}, error instanceof Error ? error.message : String(error)),
      details ? el("small", {}, details) : "",
    ),
    dismiss,
  );
  dismiss.addEventListener("click", () => item.remove());
  const list = byId("errors");
  list.prepend(item);
  while (list.children.length > 4) list.lastElementChild?.remove();
}

function isMissingFunction(error: unknown): boolean {
  return error instanceof AuthError && error.status === 404 && error.code === "NOT_FOUND" &&
    /function not found/i.test(error.message);
}

function describe(error: unknown): string {
  if (error instanceof AuthError) return `${error.message} (${error.code})`;
  return error instanceof Error ? error.message : String(error);
}

// ---- small helpers ----

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`The page has no #${id}`);
  return element as T;
}

/** An element with attributes and text or element children (text is never parsed as HTML). */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string>,
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function button(label: string, what: string, action: () => Promise<void>): HTMLButtonElement {
  const element = el("button", { type: "button", class: "small" }, label);
  element.addEventListener("click", (event) => busy(event, what, action));
  return element;
}

/** A button that asks once more ("Remove?") before doing something that cannot be undone. */
function confirmButton(label: string, action: () => Promise<void>): HTMLButtonElement {
  const element = el("button", { type: "button", class: "small danger" }, label);
  let armed: ReturnType<typeof setTimeout> | undefined;
  element.addEventListener("click", (event) => {
    if (armed === undefined) {
      element.textContent = `${label}?`;
      armed = setTimeout(() => {
        armed = undefined;
        element.textContent = label;
      }, 3000);
      return;
    }
    clearTimeout(armed);
    armed = undefined;
    element.textContent = label;
    busy(event, label, action);
  });
  return element;
}

/** The payload of a JWT, for display only (the server checks tokens, the console shows them). */
function claimsOf(token: string): Record<string, unknown> | null {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (char) => char.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function duration(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  return minutes ? `${minutes} min ${rest} s` : `${rest} s`;
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
