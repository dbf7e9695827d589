/**
 * Request validation with zod (SPEC §4): unknown extra fields are ignored, a wrong type or a
 * missing field is 400 VALIDATION_FAILED naming the field by its full path.
 */
import type * as Zod from "zod";
import type { z } from "zod";
import {
  HttpError,
  maxJsonBodyBytes,
  parseJson,
  readBody,
  requireJsonContentType,
} from "./http.ts";

/**
 * The parsed value, or 400 naming the first invalid field. `at` prefixes the field's path when the
 * value sits inside a larger body (`entry.0.changes.1.value`).
 *
 * @example
 * const { email } = validate(z.object({ email: z.email() }), body);
 */
export function validate<S extends z.ZodType>(
  schema: S,
  value: unknown,
  options: { at?: string } = {},
): z.output<S> {
  // reportInput: zod keeps each issue's input, so an absent field is told by `input === undefined`.
  const parsed = schema.safeParse(value, { reportInput: true });
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = [options.at, ...issue.path.map(String)].filter(Boolean).join(".");
  if (!field) throw new HttpError(400, "VALIDATION_FAILED", "Body must be a JSON object");
  // A field that is absent reaches zod as undefined, whatever the schema's own message says.
  const missing = issue.code === "invalid_type" && issue.input === undefined;
  throw new HttpError(
    400,
    "VALIDATION_FAILED",
    missing ? `${field} is required` : `${field} is invalid: ${issue.message}`,
  );
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

/**
 * A function's request schemas, built on first use: zod is loaded by the first request that
 * validates a body, not by every cold start.
 *
 * @example
 * export const requestSchemas = lazySchemas(({ z }) => ({ body: z.object({ id: z.uuid() }) }));
 * // in the handler: const { body } = await requestSchemas();
 */
export function lazySchemas<T>(build: (zod: typeof Zod) => T): () => Promise<T> {
  let built: Promise<T> | undefined;
  return () => built ??= import("zod").then(build);
}

const maxEmailLength = 254; // RFC 5321 path limit, as the person's email check

/** An email address field: trimmed, lower-cased, at most 254 characters. */
export function emailAddress({ z }: typeof Zod) {
  return z.string().trim().toLowerCase()
    .max(maxEmailLength, `must be at most ${maxEmailLength} characters`)
    .pipe(z.email({ error: "must be an email address" }));
}
