/**
 * A local, wire-compatible emulator of the part of Resend's HTTP API our outbox uses:
 * `POST /emails` (with `Idempotency-Key`) and `GET /emails/{id}`, behind
 * `Authorization: Bearer re_…`, answering Resend's JSON shapes and its error objects
 * (`{ statusCode, name, message }`). Point the email sender's Resend base URL here.
 *
 * Local tooling for tests, the benchmark and the dev server only: it lives outside
 * `supabase/functions/` and is never deployed. It also answers `GET /_mailbox` (no auth, loopback
 * only) so the dev page can list what was "sent".
 *
 * Built on `node:http` rather than `Deno.serve` on purpose: the `"network"` faults must make the
 * client's `fetch` itself reject, which takes writing to the raw socket, and only `node:http` hands
 * the handler its socket (`Deno.serve` always writes a well-formed status line first).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

/**
 * A failure the emulator plays instead of handling a `POST /emails`:
 * - `{ status }`: answer that status (400 to 599) with Resend's error JSON for it;
 * - `"network"`: break the connection before processing anything, so nothing is sent and the
 *   client's `fetch` rejects with a `TypeError`;
 * - `"network_after_send"`: accept the email, then break the connection instead of answering (the
 *   case idempotency keys exist for: a retry with the same key must not send it twice);
 * - `"hang"`: never answer; the connection is dropped when the emulator closes.
 */
export type ResendFault = { status: number } | "network" | "network_after_send" | "hang";

/** Options of {@linkcode startResendEmulator}. */
export interface ResendEmulatorOptions {
  /** Port on 127.0.0.1; 0 (the default) picks any free port. */
  port?: number;
  /** The one API key accepted; a fresh `re_test_…` key unless given. */
  apiKey?: string;
  /** Clock for `createdAt` and the 24-hour idempotency window; inject one to test expiry. */
  now?: () => Date;
  /** Called with every accepted email, so the dev server can print it. */
  onEmail?: (email: SentEmail) => void;
}

/** An email the emulator accepted, as the test or the dev page sees it. */
export interface SentEmail {
  /** The id answered to `POST /emails` (a UUID, as Resend's). */
  id: string;
  from: string;
  /** Always an array, even when the request gave one string. */
  to: string[];
  subject: string;
  html?: string;
  text?: string;
  replyTo?: string[];
  headers?: Record<string, string>;
  tags?: { name: string; value: string }[];
  /** The request's `Idempotency-Key` header, or null when it had none. */
  idempotencyKey: string | null;
  /** ISO 8601 time of acceptance, from the emulator's clock. */
  createdAt: string;
}

/** A running emulator; see {@linkcode startResendEmulator}. */
export interface ResendEmulator {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:PORT`. */
  url: string;
  /** The API key to send as `Authorization: Bearer …`. */
  apiKey: string;
  /**
   * Every accepted email, oldest first, as copies. A repeated `Idempotency-Key` with the same body
   * answers the first id and adds nothing.
   */
  mailbox(): SentEmail[];
  /**
   * Plays `fault` for the next `times` (default 1) `POST /emails` requests, before authentication
   * and validation. Faults queue up: a second call plays after the first is used up.
   */
  failNext(fault: ResendFault, times?: number): void;
  /** Count of `POST /emails` requests received, refused and faulted ones included. */
  requests(): number;
  /** Stops listening, drops every open connection (hanging ones too) and resolves when done. */
  close(): Promise<void>;
}

const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000; // Resend remembers a key for 24 hours
const MAX_IDEMPOTENCY_KEY_CHARS = 256; // Resend's limit
const MAX_RECIPIENTS = 50; // Resend's limit on `to`
const MAX_BODY_BYTES = 40 * 1024 * 1024; // Resend's limit on a whole email
const EMAIL_PATH = /^\/emails\/([^/]+)$/;
// One address: no spaces, brackets, quotes or separators, exactly one "@" with text on both sides.
const BARE_ADDRESS = /^[^\s@<>",;]+@[^\s@<>",;]+$/;
// `Display Name <address>`; the name may be empty or quoted.
const NAMED_ADDRESS = /^([^<>]*)<([^<>]+)>$/;
const TAG_PART = /^[A-Za-z0-9_-]{1,256}$/; // Resend: ASCII letters, digits, "_" and "-"

/** Resend's error names and messages for the statuses we play or answer. */
const ERRORS: Record<number, { name: string; message: string }> = {
  400: { name: "validation_error", message: "We found an error with one or more fields." },
  401: { name: "missing_api_key", message: "Missing API key in the authorization header." },
  403: { name: "invalid_api_key", message: "API key is invalid." },
  404: { name: "not_found", message: "The requested endpoint does not exist." },
  405: { name: "method_not_allowed", message: "Method is not allowed for the requested path." },
  409: {
    name: "invalid_idempotent_request",
    message: "Same idempotency key used with a different request payload.",
  },
  422: { name: "validation_error", message: "We found an error with one or more fields." },
  429: {
    name: "rate_limit_exceeded",
    message: "Too many requests. You can only make 2 requests per second.",
  },
  500: { name: "internal_server_error", message: "An unexpected error occurred." },
};

/**
 * What a route answers: a JSON answer; `"break"` to cut the connection so the client's request
 * fails; or `"drop"` to close it silently because nobody is waiting any more.
 */
type Outcome =
  | { status: number; body: unknown; headers?: Record<string, string> }
  | "break"
  | "drop";

/**
 * Written instead of an answer by the `"network"` faults. Closing the socket without a byte is not
 * enough: Deno's `fetch` then replays the request once on a new connection (seen with Deno 2.9),
 * so a Deno client would never notice the fault. A malformed status line fails the request once,
 * without a replay, as a cut connection does.
 */
const BROKEN_ANSWER = "RESEND-EMULATOR-NETWORK-FAULT\r\n\r\n";

interface IdempotencyRecord {
  fingerprint: string;
  emailId: string;
  acceptedAtMs: number;
}

/** Thrown by validation with the Resend error it maps to. */
class ResendRefusal extends Error {
  constructor(readonly status: number, readonly errorName: string, message: string) {
    super(message);
  }
}

/**
 * Starts the emulator on 127.0.0.1 and resolves once it listens.
 *
 * @example
 * ```ts
 * const resend = await startResendEmulator();
 * const answer = await fetch(`${resend.url}/emails`, {
 *   method: "POST",
 *   headers: { authorization: `Bearer ${resend.apiKey}`, "content-type": "application/json" },
 *   body: JSON.stringify({ from: "Acme <hi@acme.test>", to: "ada@example.com", subject: "Hi", text: "Hi" }),
 * });
 * console.log(await answer.json(), resend.mailbox().length); // { id: "…" } 1
 * await resend.close();
 * ```
 */
export async function startResendEmulator(
  options: ResendEmulatorOptions = {},
): Promise<ResendEmulator> {
  const apiKey = options.apiKey ?? `re_test_${crypto.randomUUID().replaceAll("-", "")}`;
  const now = options.now ?? (() => new Date());
  const emails: SentEmail[] = [];
  const emailsById = new Map<string, SentEmail>();
  const idempotency = new Map<string, IdempotencyRecord>();
  const keysInFlight = new Set<string>();
  const faults: { fault: ResendFault; remaining: number }[] = [];
  const hanging = new Set<() => void>();
  let postCount = 0;
  let closed = false;

  function refusal(status: number, name: string, message: string): Outcome {
    const headers: Record<string, string> = status === 429 ? { "retry-after": "1" } : {};
    return { status, body: { statusCode: status, name, message }, headers };
  }

  function faultAnswer(status: number): Outcome {
    const known = ERRORS[status] ??
      (status >= 500 ? ERRORS[500] : { name: "application_error", message: "Request failed." });
    return refusal(status, known.name, known.message);
  }

  function takeFault(): ResendFault | undefined {
    const head = faults[0];
    if (!head) return undefined;
    if (--head.remaining === 0) faults.shift();
    return head.fault;
  }

  async function sendEmail(request: IncomingMessage): Promise<Outcome> {
    postCount++;
    const fault = takeFault();
    if (fault === "network") {
      // Take the whole body first: closing on unread bytes can reset the connection before the
      // client reads the broken answer, and Deno's fetch replays a request after a bare reset.
      await readBody(request).catch(() => null);
      return "break";
    }
    if (fault === "hang") {
      await new Promise<void>((release) => hanging.add(release));
      return "drop";
    }
    if (typeof fault === "object") return faultAnswer(fault.status);

    const auth = checkBearer(request.headers.authorization, apiKey);
    if (auth === "missing") return refusal(401, "missing_api_key", ERRORS[401].message);
    if (auth === "invalid") return refusal(403, "invalid_api_key", ERRORS[403].message);

    const key = headerValue(request.headers["idempotency-key"]);
    if (key !== null && (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_CHARS)) {
      return refusal(400, "invalid_idempotency_key", "The key must be between 1-256 chars.");
    }
    // The key is claimed as soon as the headers are in, as Resend does, so a retry sent while the
    // first request's body is still arriving is refused rather than sent twice.
    if (key !== null && keysInFlight.has(key)) {
      return refusal(
        409,
        "concurrent_idempotent_requests",
        "Same idempotency key used while original request is still in progress.",
      );
    }
    if (key !== null) keysInFlight.add(key);
    try {
      let raw: string | null;
      try {
        raw = await readBody(request);
      } catch {
        return "drop"; // the client went away mid-body: nobody is left to answer
      }
      if (raw === null) return refusal(422, "validation_error", "The request body is too large.");
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        return refusal(400, "validation_error", "The request body is not valid JSON.");
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        return refusal(400, "validation_error", "The request body must be a JSON object.");
      }
      const nowMs = now().getTime();
      const fingerprint = canonicalJson(body);
      const previous = key === null ? undefined : idempotency.get(key);
      if (previous && nowMs - previous.acceptedAtMs < IDEMPOTENCY_WINDOW_MS) {
        if (previous.fingerprint !== fingerprint) {
          return refusal(409, "invalid_idempotent_request", ERRORS[409].message);
        }
        return fault === "network_after_send" ? "break" : answerId(previous.emailId);
      }
      let email: SentEmail;
      try {
        email = toSentEmail(body as Record<string, unknown>, key, new Date(nowMs).toISOString());
      } catch (error) {
        if (!(error instanceof ResendRefusal)) throw error;
        return refusal(error.status, error.errorName, error.message);
      }
      emails.push(email);
      emailsById.set(email.id, email);
      if (key !== null) {
        idempotency.set(key, { fingerprint, emailId: email.id, acceptedAtMs: nowMs });
      }
      options.onEmail?.(structuredClone(email));
      return fault === "network_after_send" ? "break" : answerId(email.id);
    } finally {
      if (key !== null) keysInFlight.delete(key);
    }
  }

  function getEmail(request: IncomingMessage, id: string): Outcome {
    const auth = checkBearer(request.headers.authorization, apiKey);
    if (auth === "missing") return refusal(401, "missing_api_key", ERRORS[401].message);
    if (auth === "invalid") return refusal(403, "invalid_api_key", ERRORS[403].message);
    const email = emailsById.get(id);
    if (!email) return refusal(404, "not_found", "Email not found");
    return {
      status: 200,
      body: {
        object: "email",
        id: email.id,
        to: email.to,
        from: email.from,
        created_at: email.createdAt,
        subject: email.subject,
        html: email.html ?? null,
        text: email.text ?? null,
        bcc: null,
        cc: null,
        reply_to: email.replyTo ?? null,
        last_event: "delivered", // the emulator "delivers" on acceptance
        scheduled_at: null,
        tags: email.tags ?? [],
      },
    };
  }

  async function route(request: IncomingMessage): Promise<Outcome> {
    const path = new URL(request.url ?? "/", "http://emulator").pathname;
    const method = request.method ?? "GET";
    if (path === "/emails") {
      return method === "POST"
        ? await sendEmail(request)
        : refusal(405, "method_not_allowed", ERRORS[405].message);
    }
    const byId = EMAIL_PATH.exec(path);
    if (byId) {
      return method === "GET"
        ? getEmail(request, decodeURIComponent(byId[1]))
        : refusal(405, "method_not_allowed", ERRORS[405].message);
    }
    if (path === "/_mailbox" && method === "GET") {
      return { status: 200, body: { object: "list", data: emails } };
    }
    return refusal(404, "not_found", ERRORS[404].message);
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let outcome: Outcome;
    try {
      outcome = await route(request);
    } catch (error) {
      // A bug in the emulator: say so loudly, and answer as Resend answers its own failures.
      console.error("resend_emulator_error", error);
      outcome = faultAnswer(500);
    }
    if (outcome === "break" && !closed) {
      request.socket.end(BROKEN_ANSWER);
      return;
    }
    if (outcome === "drop" || outcome === "break" || closed) {
      request.socket.destroy();
      return;
    }
    const payload = JSON.stringify(outcome.body);
    response.writeHead(outcome.status, {
      "content-type": "application/json",
      "content-length": String(new TextEncoder().encode(payload).byteLength),
      ...outcome.headers,
    });
    response.end(payload);
  }

  const server = createServer((request, response) => void handle(request, response));
  const listening = Promise.withResolvers<void>();
  server.once("error", listening.reject);
  server.listen(options.port ?? 0, "127.0.0.1", () => listening.resolve());
  await listening.promise;
  const { port } = server.address() as { port: number };
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    mailbox: () => structuredClone(emails),
    failNext(fault, times = 1) {
      if (!Number.isInteger(times) || times < 1) {
        throw new RangeError(`Cannot queue fault: times must be a positive integer, got ${times}`);
      }
      if (
        typeof fault === "object" &&
        (!Number.isInteger(fault.status) || fault.status < 400 || fault.status > 599)
      ) {
        throw new RangeError(`Cannot queue fault: status must be 400 to 599, got ${fault.status}`);
      }
      faults.push({ fault, remaining: times });
    },
    requests: () => postCount,
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        faults.length = 0;
        for (const release of hanging) release();
        hanging.clear();
        server.close(() => resolve());
        server.closeAllConnections(); // keep-alive and hanging connections would hold close open
      });
      return closing;
    },
  };
}

function answerId(id: string): Outcome {
  return { status: 200, body: { id } };
}

/**
 * Checks `Authorization: Bearer <key>`: `"missing"` (Resend's 401) when there is no bearer key,
 * `"invalid"` (403) when it is not ours.
 */
function checkBearer(header: string | undefined, apiKey: string): "ok" | "missing" | "invalid" {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!match) return "missing";
  return sameSecret(match[1], apiKey) ? "ok" : "invalid";
}

/** Constant-time comparison, so even the emulator does not leak its key through timing. */
function sameSecret(a: string, b: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(a), digest(b));
}

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : value;
}

/** The whole body as text, or null past {@linkcode MAX_BODY_BYTES}. */
async function readBody(request: IncomingMessage): Promise<string | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** JSON with object keys sorted, so the same payload serialised in another order is "the same". */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Validates a `POST /emails` body as Resend does and builds the mailbox entry. */
function toSentEmail(
  body: Record<string, unknown>,
  idempotencyKey: string | null,
  createdAt: string,
): SentEmail {
  const from = requiredString(body, "from");
  if (!isAddress(from)) throw invalidAddress("from");
  const to = addressList(body.to, "to", true);
  const subject = requiredString(body, "subject");
  const html = optionalString(body, "html");
  const text = optionalString(body, "text");
  if (html === undefined && text === undefined) {
    throw new ResendRefusal(422, "missing_required_field", "Missing `html` or `text` field.");
  }
  const email: SentEmail = {
    id: crypto.randomUUID(),
    from,
    to,
    subject,
    idempotencyKey,
    createdAt,
  };
  if (html !== undefined) email.html = html;
  if (text !== undefined) email.text = text;
  if (body.reply_to !== undefined && body.reply_to !== null) {
    email.replyTo = addressList(body.reply_to, "reply_to", false);
  }
  if (body.headers !== undefined && body.headers !== null) email.headers = headers(body.headers);
  if (body.tags !== undefined && body.tags !== null) email.tags = tags(body.tags);
  return email;
}

function requiredString(body: Record<string, unknown>, field: string): string {
  const value = body[field];
  if (value === undefined || value === null) {
    throw new ResendRefusal(422, "missing_required_field", `Missing \`${field}\` field.`);
  }
  if (typeof value !== "string" || value.trim() === "") {
    throw new ResendRefusal(422, "validation_error", `The \`${field}\` field must be a string.`);
  }
  return value;
}

function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") {
    throw new ResendRefusal(422, "validation_error", `The \`${field}\` field must be a string.`);
  }
  return value;
}

function addressList(value: unknown, field: string, required: boolean): string[] {
  if (required && (value === undefined || value === null)) {
    throw new ResendRefusal(422, "missing_required_field", `Missing \`${field}\` field.`);
  }
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_RECIPIENTS) {
    throw new ResendRefusal(
      422,
      "validation_error",
      `The \`${field}\` field must be an address or an array of 1 to ${MAX_RECIPIENTS} addresses.`,
    );
  }
  for (const address of list) {
    if (typeof address !== "string" || !isAddress(address)) throw invalidAddress(field);
  }
  return [...list] as string[];
}

function invalidAddress(field: string): ResendRefusal {
  return new ResendRefusal(
    422,
    "validation_error",
    `Invalid \`${field}\` field. The email address needs to follow the \`email@example.com\` or ` +
      "`Name <email@example.com>` format.",
  );
}

/** `addr@domain` or `Name <addr@domain>`, with no control character anywhere (header injection). */
function isAddress(value: string): boolean {
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(value)) return false;
  const trimmed = value.trim();
  if (BARE_ADDRESS.test(trimmed)) return true;
  const named = NAMED_ADDRESS.exec(trimmed);
  return named !== null && BARE_ADDRESS.test(named[2].trim());
}

function headers(value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ResendRefusal(422, "validation_error", "The `headers` field must be an object.");
  }
  const result: Record<string, string> = {};
  for (const [name, headerValue] of Object.entries(value)) {
    // deno-lint-ignore no-control-regex -- a CR or LF would let a header smuggle others
    if (typeof headerValue !== "string" || /[\r\n\u0000]/.test(name + headerValue)) {
      throw new ResendRefusal(422, "validation_error", "The `headers` field is invalid.");
    }
    result[name] = headerValue;
  }
  return result;
}

function tags(value: unknown): { name: string; value: string }[] {
  if (!Array.isArray(value)) {
    throw new ResendRefusal(422, "validation_error", "The `tags` field must be an array.");
  }
  return value.map((tag) => {
    if (
      typeof tag !== "object" || tag === null || typeof tag.name !== "string" ||
      typeof tag.value !== "string" || !TAG_PART.test(tag.name) || !TAG_PART.test(tag.value)
    ) {
      throw new ResendRefusal(
        422,
        "validation_error",
        "Tags should only contain ASCII letters, numbers, underscores, or dashes.",
      );
    }
    return { name: tag.name, value: tag.value };
  });
}
