/**
 * HTTP conventions shared by every function (SPEC §4): the `{code, message}` error type and its one
 * mapping to responses, JSON answers, CORS headers, bounded body reading and the bearer token.
 */

export type ErrorCode =
  | "VALIDATION_FAILED"
  | "INVALID_RETURN_TO"
  | "INVALID_STATE"
  | "UNAUTHORIZED"
  | "INVALID_API_KEY"
  | "TOKEN_EXPIRED"
  | "INVALID_SIGNATURE"
  | "INVALID_CODE"
  | "INVALID_REFRESH_TOKEN"
  | "REFRESH_TOKEN_REUSED"
  | "SESSION_REVOKED"
  | "EMAIL_NOT_VERIFIED"
  | "FORBIDDEN"
  | "NOT_A_MEMBER"
  | "LAST_OWNER"
  | "ALREADY_A_MEMBER"
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
  | "DATABASE_UNAVAILABLE"
  | "STYTCH_NOT_CONFIGURED"
  | "WORKOS_NOT_CONFIGURED"
  | "WHATSAPP_NOT_CONFIGURED"
  | "SIGNUP_WEBHOOK_NOT_CONFIGURED"
  | "EMAIL_NOT_CONFIGURED";

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

/** The headers Supabase's clients send, allowed in CORS preflight (SPEC §4). */
export const corsHeaders: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, x-client-info, apikey, content-type",
};

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
export function withHeaders(res: Response, headers: Record<string, string>): Response {
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

/** 415 unless the Content-Type is JSON (or absent, as from curl without -H). */
export function requireJsonContentType(req: Request): void {
  const type = req.headers.get("content-type");
  if (type && !/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
  }
}

/** The bearer token of the Authorization header, or null. */
export function bearerToken(req: Request): string | null {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  return match ? match[1] : null;
}
