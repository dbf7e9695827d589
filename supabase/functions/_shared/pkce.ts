/**
 * PKCE (RFC 7636) with the S256 method: the code WorkOS returns can only be exchanged by whoever
 * holds the verifier, which travels sealed inside the state, in addition to the client secret.
 */

import { encodeBase64Url } from "./base64url.ts";

export interface PkcePair {
  /** 43 base64url characters: 32 random bytes (RFC 7636 §4.1 allows 43 to 128). */
  codeVerifier: string;
  /** base64url(SHA-256(codeVerifier)), sent to WorkOS with `code_challenge_method=S256`. */
  codeChallenge: string;
}

const verifierBytes = 32;

/**
 * A fresh verifier and its S256 challenge.
 *
 * @example
 * const { codeVerifier, codeChallenge } = await createPkcePair();
 */
export async function createPkcePair(): Promise<PkcePair> {
  const codeVerifier = encodeBase64Url(crypto.getRandomValues(new Uint8Array(verifierBytes)));
  return { codeVerifier, codeChallenge: await s256CodeChallenge(codeVerifier) };
}

/** The S256 challenge of a verifier. */
export async function s256CodeChallenge(codeVerifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(codeVerifier));
  return encodeBase64Url(new Uint8Array(digest));
}
