/** Calling handlers with real Requests, and reading what a client would see. */
import type { Handler } from "../../supabase/functions/_shared/http.ts";
import { testPublishableKey } from "./keys.ts";

export interface CallOptions {
  method?: string;
  /** An object is sent as JSON; a string or bytes are sent as they are. */
  body?: unknown;
  token?: string;
  /** The `apikey` header; the test publishable key unless given, none when null. */
  apiKey?: string | null;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/**
 * Sends a request to a handler as the local server would and parses its JSON answer. Like
 * supabase-js, it sends the project's publishable key as `apikey` unless told otherwise.
 */
export async function call(
  handler: Handler,
  path: string,
  options: CallOptions = {},
): Promise<CallResult> {
  const headers = new Headers(options.headers);
  let body: BodyInit | undefined;
  if (typeof options.body === "string" || options.body instanceof Uint8Array) {
    body = options.body as BodyInit;
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  const apiKey = options.apiKey === undefined ? testPublishableKey : options.apiKey;
  if (apiKey !== null && !headers.has("apikey")) headers.set("apikey", apiKey);
  const method = options.method ?? (body === undefined ? "GET" : "POST");
  const res = await handler(
    new Request(`http://127.0.0.1:54321/functions/v1/${path}`, { method, headers, body }),
  );
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** A client IP of its own (10.x.y.z), so tests never share a per-IP limit. */
export function randomIp(): string {
  const [a, b, c] = crypto.getRandomValues(new Uint8Array(3));
  return `10.${a}.${b}.${c}`;
}
