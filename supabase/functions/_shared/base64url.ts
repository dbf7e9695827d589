/** base64url without padding (RFC 4648 §5), as tokens, states and PKCE values use it. */

/** Encodes bytes as unpadded base64url. */
export function encodeBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Decodes canonical unpadded base64url, or null for anything else. Canonical only: trailing bits
 * that base64 ignores would let two different strings decode to the same bytes.
 */
export function decodeBase64Url(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return null;
  try {
    const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return encodeBase64Url(bytes) === text ? bytes : null;
  } catch {
    return null;
  }
}
