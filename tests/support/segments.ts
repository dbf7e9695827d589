/** JWT segments written by hand, for tests that forge what no library would sign. */
import { encodeBase64Url } from "../../supabase/functions/_shared/base64url.ts";

/** base64url of a text's UTF-8 bytes. */
export function textSegment(text: string): string {
  return encodeBase64Url(new TextEncoder().encode(text));
}

/** base64url of a value's JSON. */
export function jsonSegment(value: unknown): string {
  return textSegment(JSON.stringify(value));
}
