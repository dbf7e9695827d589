/**
 * HTTP conventions shared by every function (SPEC §4): the `{code, message}` error type and its one
 * mapping to responses, request ids, CORS, method checks, bounded body reading with zod validation,
 * and JSON logs that never carry tokens, codes, secrets or full email addresses.
 */
import type { z } from "zod";

export type ErrorCode =
  | "VALIDATION_FAILED"
  | "INVALID_RETURN_TO"
  | "INVALID_STATE"
  | "UNAUTHORIZED"
  | "TOKEN_EXPIRED"
  | "INVALID_SIGNATURE"
  | "INVALID_CODE"
  | "INVALID_REFRESH_TOKEN"
  | "REFRESH_TOKEN_REUSED"
  | "SESSION_REVOKED"
  | "EMAIL_NOT_VERIFIED"
  | "FORBIDDEN"
  | "SIGNUP_DISABLED"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "IDENTITY_CONFLICT"
  | "PAYLOAD_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "RATE_LIMITED"
  | "TOO_MANY_ATTEMPTS"
  | "INTERNAL"
  | "PROVIDER_ERROR"
  | "NOT_CONFIGURED"
  | "STYTCH_NOT_CONFIGURED"
  | "WORKOS_NOT_CONFIGURED"
  | "WHATSAPP_NOT_CONFIGURED"
  | "SIGNUP_WEBHOOK_NOT_CONFIGURED";

/** An answer the client should see: status, a stable code, and a human sentence. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** A function's handler, as Deno.serve calls it. */
export type Handler = (req: Request, info?: Deno.ServeHandlerInfo) => Promise<Response>;

export interface RequestContext {
  requestId: string;
  log: Logger;
  /** The client's IP: the first `x-forwarded-for` hop (set by Supabase's edge), else the peer. */
  clientIp: string;
}

export interface HandlerOptions {
  /** Function name, used in logs. */
  name: string;
  /** Allowed methods; anything else is 405 with `Allow`. */
  methods: string[];
  /** Answer CORS preflight and add CORS headers (browser-facing functions). */
  cors?: boolean;
}

export const corsHeaders: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, x-client-info, apikey, content-type",
};

/**
 * Wraps a function's logic with the shared conventions: request id on every response, CORS,
 * method check, one mapping of errors to `{code, message}` (anything unexpected is a bare 500
 * whose detail only reaches the log), and one log line per request.
 */
export function defineHandler(
  options: HandlerOptions,
  handle: (req: Request, ctx: RequestContext) => Promise<Response>,
): Handler {
  const allow = options.methods.join(", ");
  // Preflight answers carry the whole CORS policy; other answers only need the origin rule, and
  // expose the request id to browser code.
  const preflightHeaders = { ...corsHeaders, "access-control-allow-methods": `${allow}, OPTIONS` };
  const responseHeaders: Record<string, string> = options.cors
    ? { "access-control-allow-origin": "*", "access-control-expose-headers": "x-request-id" }
    : {};
  return async function handler(req, info): Promise<Response> {
    const startedAt = performance.now();
    const requestId = crypto.randomUUID();
    const log = createLogger({ fn: options.name, request_id: requestId });
    let res: Response;
    if (options.cors && req.method === "OPTIONS") {
      res = new Response(null, { status: 204, headers: preflightHeaders });
    } else if (!options.methods.includes(req.method)) {
      res = errorResponse(
        new HttpError(405, "METHOD_NOT_ALLOWED", `Method ${req.method} is not allowed`, { allow }),
      );
    } else {
      try {
        const peer = (info?.remoteAddr as Deno.NetAddr | undefined)?.hostname;
        res = await handle(req, { requestId, log, clientIp: clientIp(req, peer) });
      } catch (error) {
        if (!(error instanceof HttpError)) {
          log.error("unhandled error", { error: errorDetail(error) });
        }
        res = errorResponse(error, requestId);
      }
    }
    res = withHeaders(res, { ...responseHeaders, "x-request-id": requestId });
    log.info("request", () => ({
      method: req.method,
      path: new URL(req.url).pathname, // never the query: it can carry codes and state
      status: res.status,
      duration_ms: Math.round(performance.now() - startedAt),
    }));
    return res;
  };
}

/** A JSON response. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The one mapping of errors to responses. */
export function errorResponse(error: unknown, requestId?: string): Response {
  if (error instanceof HttpError) {
    return json({ code: error.code, message: error.message }, error.status, error.headers);
  }
  return json(
    { code: "INTERNAL", message: `Unexpected error (request id ${requestId ?? "unknown"})` },
    500,
  );
}

/** Adds headers, copying the response when its headers are immutable (redirects, fetch results). */
function withHeaders(res: Response, headers: Record<string, string>): Response {
  try {
    for (const [name, value] of Object.entries(headers)) res.headers.set(name, value);
    return res;
  } catch {
    const copy = new Response(res.body, res);
    for (const [name, value] of Object.entries(headers)) copy.headers.set(name, value);
    return copy;
  }
}

export const maxJsonBodyBytes = 64 * 1024;

/**
 * Reads the body as bytes, refusing more than `maxBytes` with 413 without reading it whole: the
 * declared length is checked first, then the stream is counted as it arrives.
 */
export async function readBody(req: Request, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new HttpError(413, "PAYLOAD_TOO_LARGE", `Body must be at most ${maxBytes} bytes`);
  const declared = Number(req.headers.get("content-length"));
  if (declared > maxBytes) throw tooLarge();
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** Parses bytes as JSON; malformed JSON is 400. */
export function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new HttpError(400, "VALIDATION_FAILED", "Body is not valid JSON");
  }
}

/**
 * Reads a JSON body (64 KiB at most) and validates it: 415 for another content type, 400 naming
 * the first invalid field. Unknown extra fields are ignored.
 */
export async function readJson<S extends z.ZodType>(
  req: Request,
  schema: S,
  maxBytes = maxJsonBodyBytes,
): Promise<z.output<S>> {
  requireJsonContentType(req);
  return validate(schema, parseJson(await readBody(req, maxBytes)));
}

/** 415 unless the Content-Type is JSON (or absent, as from curl without -H). */
export function requireJsonContentType(req: Request): void {
  const type = req.headers.get("content-type");
  if (type && !/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
  }
}

/** Validates a value with zod; 400 naming the first invalid field. */
export function validate<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue.path.join(".");
  if (!field) throw new HttpError(400, "VALIDATION_FAILED", "Body must be a JSON object");
  const missing = issue.code === "invalid_type" && issue.message.endsWith("undefined");
  throw new HttpError(
    400,
    "VALIDATION_FAILED",
    missing ? `${field} is required` : `${field} is invalid: ${issue.message}`,
  );
}

/** The bearer token of the Authorization header, or null. */
export function bearerToken(req: Request): string | null {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  return match ? match[1] : null;
}

/** The client's IP: the first `x-forwarded-for` hop (set by Supabase's edge), else the peer. */
function clientIp(req: Request, connectionIp?: string): string {
  const forwarded = req.headers.get("x-forwarded-for")?.split(",")[0]?.trim();
  return forwarded || connectionIp || "unknown";
}

/** Fields of a log line, or a function computing them only when the line is written. */
export type LogFields = Record<string, unknown> | (() => Record<string, unknown>);

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

const levels = { info: 0, warn: 1, error: 2, silent: 3 } as const;
type Level = keyof typeof levels;
const minLevel: Level = (Deno.env.get("LOG_LEVEL") as Level) in levels
  ? Deno.env.get("LOG_LEVEL") as Level
  : "info";

/**
 * One JSON object per line (LOG_LEVEL: info, warn, error or silent). Callers pass ids and counts,
 * never tokens, codes or secrets.
 */
export function createLogger(base: Record<string, unknown>): Logger {
  const write = (level: Level, event: string, fields?: LogFields) => {
    if (levels[level] < levels[minLevel]) return;
    const extra = typeof fields === "function" ? fields() : fields;
    console.log(
      JSON.stringify({ level, event, ...base, ...extra, time: new Date().toISOString() }),
    );
  };
  return {
    info: (event, fields) => write("info", event, fields),
    warn: (event, fields) => write("warn", event, fields),
    error: (event, fields) => write("error", event, fields),
  };
}

/** `ada@example.com` → `a***@example.com`: enough to correlate, not enough to identify. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf("@");
  return at < 1 ? "***" : `${email[0]}***${email.slice(at)}`;
}

function errorDetail(error: unknown): Record<string, unknown> {
  return error instanceof Error
    ? { name: error.name, message: error.message, stack: error.stack }
    : { value: String(error) };
}
