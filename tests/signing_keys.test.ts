import assert from "node:assert/strict";
import { CompactSign, compactVerify, importJWK } from "jose";
import { decodeBase64Url, encodeBase64Url } from "../supabase/functions/_shared/base64url.ts";
import {
  createJwtKeyring,
  parseSigningKeys,
  type SigningKeyJwk,
} from "../supabase/functions/_shared/signing_keys.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const supabaseCli = new URL("../node_modules/.bin/supabase", import.meta.url).pathname;
const hs256Secret = "a-legacy-jwt-secret-of-at-least-32-characters";
const payload = encoder.encode(JSON.stringify({ sub: "5b0e8a52-3c1f-4e0b-9a57-0d2f3c4b5a69" }));

/** A real private JWK from the Supabase CLI (first line of its stdout), as an operator pastes it. */
async function generateSigningKeyText(algorithm: "ES256" | "RS256"): Promise<string> {
  const output = await new Deno.Command(supabaseCli, {
    args: ["gen", "signing-key", "--algorithm", algorithm],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, `supabase gen signing-key failed: ${decoder.decode(output.stderr)}`);
  return decoder.decode(output.stdout).split("\n")[0];
}

function parseOne(text: string): SigningKeyJwk {
  const parsed = parseSigningKeys(text);
  if (!parsed.ok) throw new Error(parsed.message);
  assert.equal(parsed.keys.length, 1);
  return parsed.keys[0];
}

// Generated once for the whole file: es256 signs, es256Next is the rotation partner, es256Stranger
// is a key the keyring never lists, rs256 covers RSA.
const [es256Text, es256NextText, es256StrangerText, rs256Text] = await Promise.all([
  generateSigningKeyText("ES256"),
  generateSigningKeyText("ES256"),
  generateSigningKeyText("ES256"),
  generateSigningKeyText("RS256"),
]);
const es256 = parseOne(es256Text);
const es256Next = parseOne(es256NextText);
const es256Stranger = parseOne(es256StrangerText);
const rs256 = parseOne(rs256Text);

const keyring = createJwtKeyring({ signingKeys: [es256, rs256], hs256Secret });

function segments(token: string): [string, string, string] {
  const [header, body, signature] = token.split(".");
  return [header, body, signature];
}

function decodeHeader(token: string): Record<string, unknown> {
  return JSON.parse(decoder.decode(decodeBase64Url(segments(token)[0])!));
}

function encodeJson(value: unknown): string {
  return encodeBase64Url(encoder.encode(JSON.stringify(value)));
}

/** Signs with jose under any header, as an attacker (or another system) could. */
async function signWith(
  jwk: SigningKeyJwk,
  header: Record<string, unknown>,
): Promise<string> {
  const { key_ops: _keyOps, ext: _ext, use: _use, ...privateJwk } = jwk;
  const key = await importJWK(privateJwk, jwk.alg);
  return await new CompactSign(payload).setProtectedHeader({ alg: jwk.alg, ...header }).sign(key);
}

/** An HS256 token over `payload` under any header and any HMAC key bytes. */
async function signHs256(header: Record<string, unknown>, keyBytes: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    keyBytes as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signingInput = `${encodeJson(header)}.${encodeBase64Url(payload)}`;
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(signingInput));
  return `${signingInput}.${encodeBase64Url(new Uint8Array(mac))}`;
}

/** The same base64url text with its unused low bits set: jose would decode it to the same bytes. */
function withUnusedBitsSet(segment: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  assert.notEqual(segment.length % 4, 0, "segment has no unused bits");
  const last = alphabet.indexOf(segment.at(-1)!);
  return segment.slice(0, -1) + alphabet[last | 1];
}

// --- round trips -------------------------------------------------------------------------------

Deno.test("an ES256 keyring signs with the key's alg and kid and verifies its own token", async () => {
  const es256Only = createJwtKeyring({ signingKeys: [es256] });
  assert.equal(es256Only.signingKid, es256.kid);
  const token = await es256Only.sign(payload);
  const expectedHeader = { alg: "ES256", kid: es256.kid, typ: "JWT" };
  assert.deepEqual(decodeHeader(token), expectedHeader);
  // JOSE's raw r || s form, not DER.
  assert.equal(decodeBase64Url(segments(token)[2])!.byteLength, 64);
  const verified = await es256Only.verify(token);
  assert.deepEqual(verified, { header: expectedHeader, payload });
});

Deno.test("an RS256 keyring signs with the key's alg and kid and verifies its own token", async () => {
  const rs256Only = createJwtKeyring({ signingKeys: [rs256] });
  const token = await rs256Only.sign(payload);
  assert.deepEqual(decodeHeader(token), { alg: "RS256", kid: rs256.kid, typ: "JWT" });
  assert.equal(decodeBase64Url(segments(token)[2])!.byteLength, 256);
  const verified = await rs256Only.verify(token);
  assert.deepEqual(verified?.payload, payload);
});

Deno.test("without signing keys, tokens are HS256 with the secret and carry no kid", async () => {
  const legacy = createJwtKeyring({ signingKeys: [], hs256Secret });
  assert.equal(legacy.signingKid, null);
  const token = await legacy.sign(payload);
  assert.deepEqual(decodeHeader(token), { alg: "HS256", typ: "JWT" });
  assert.deepEqual(await legacy.verify(token), {
    header: { alg: "HS256", typ: "JWT" },
    payload,
  });
  // The same token any HS256 implementation would accept with the secret (Supabase's legacy check).
  const checked = await compactVerify(token, encoder.encode(hs256Secret), {
    algorithms: ["HS256"],
  });
  assert.deepEqual(checked.payload, payload);
});

Deno.test("sign keeps the payload bytes exactly, whatever they are", async () => {
  const bytes = new Uint8Array([0, 255, 10, 13, 0x7b, 0x22]);
  const verified = await keyring.verify(await keyring.sign(bytes));
  assert.deepEqual(verified?.payload, bytes);
});

Deno.test("with signing keys and the secret, the first key signs and legacy HS256 still verifies", async () => {
  assert.equal(keyring.signingKid, es256.kid);
  assert.equal(decodeHeader(await keyring.sign(payload)).kid, es256.kid);
  const legacyToken = await signHs256({ alg: "HS256", typ: "JWT" }, encoder.encode(hs256Secret));
  assert.deepEqual((await keyring.verify(legacyToken))?.payload, payload);
});

Deno.test("a header the keyring did not write is parsed and accepted by the same policy", async () => {
  // Another member order and extra harmless parameters: not the cached spelling.
  const token = await signWith(es256, { typ: "at+jwt", kid: es256.kid, x5t: "ignored" });
  const verified = await keyring.verify(token);
  assert.deepEqual(verified?.header, {
    alg: "ES256",
    typ: "at+jwt",
    kid: es256.kid,
    x5t: "ignored",
  });
});

Deno.test("createJwtKeyring refuses to be built without any key or with one kid twice", () => {
  assert.throws(() => createJwtKeyring({ signingKeys: [] }), TypeError);
  assert.throws(() => createJwtKeyring({ signingKeys: [], hs256Secret: "" }), TypeError);
  assert.throws(() => createJwtKeyring({ signingKeys: [es256, es256] }), TypeError);
});

// --- rotation and foreign keys -----------------------------------------------------------------

Deno.test("during a rotation a token of the second key still verifies", async () => {
  const before = createJwtKeyring({ signingKeys: [es256Next] });
  const rotated = createJwtKeyring({ signingKeys: [es256, es256Next] });
  const oldToken = await before.sign(payload);
  assert.deepEqual((await rotated.verify(oldToken))?.payload, payload);
  assert.equal(decodeHeader(await rotated.sign(payload)).kid, es256.kid);
});

Deno.test("verify refuses a token of a key that is not listed (another kid)", async () => {
  const token = await signWith(es256Stranger, { kid: es256Stranger.kid, typ: "JWT" });
  assert.equal(await keyring.verify(token), null);
  const afterRotation = createJwtKeyring({ signingKeys: [es256Next] });
  assert.equal(await afterRotation.verify(await keyring.sign(payload)), null);
});

Deno.test("verify refuses a token of another key that claims a listed kid", async () => {
  const impostor = { ...es256Stranger, kid: es256.kid };
  const token = await signWith(impostor, { kid: es256.kid, typ: "JWT" });
  // Byte for byte the header our own tokens carry, so the cached policy is used: only the
  // signature tells them apart.
  assert.equal(segments(token)[0], segments(await keyring.sign(payload))[0]);
  assert.equal(await keyring.verify(token), null);
});

Deno.test("verify refuses a signature moved from one token to another", async () => {
  const [header, , signature] = segments(await keyring.sign(payload));
  const other = encodeJson({ sub: "someone-else" });
  assert.equal(await keyring.verify(`${header}.${other}.${signature}`), null);
});

// --- algorithm confusion -----------------------------------------------------------------------

Deno.test("verify refuses a header alg other than the kid's key's alg", async () => {
  // A genuine RS256 signature, but under the kid of the ES256 key.
  const rsUnderEsKid = await signWith(rs256, { kid: es256.kid, typ: "JWT" });
  assert.equal(await keyring.verify(rsUnderEsKid), null);
  const esUnderRsKid = await signWith(es256, { kid: rs256.kid, typ: "JWT" });
  assert.equal(await keyring.verify(esUnderRsKid), null);
});

Deno.test("verify refuses HS256 'signed' with the bytes of an ES256 public key", async () => {
  const [publicJwk] = createJwtKeyring({ signingKeys: [es256] }).publicJwks;
  const candidates = [
    encoder.encode(JSON.stringify(publicJwk)),
    decodeBase64Url(publicJwk.x!)!,
    encoder.encode(publicJwk.x!),
  ];
  for (const keyBytes of candidates) {
    for (const header of [{ alg: "HS256", kid: es256.kid, typ: "JWT" }, { alg: "HS256" }]) {
      const token = await signHs256(header, keyBytes);
      assert.equal(await keyring.verify(token), null, JSON.stringify(header));
    }
  }
});

Deno.test("verify refuses HS256 with a kid even when the secret itself signed it", async () => {
  for (const kid of [es256.kid, "legacy-secret"]) {
    const token = await signHs256({ alg: "HS256", kid, typ: "JWT" }, encoder.encode(hs256Secret));
    assert.equal(await keyring.verify(token), null);
  }
});

Deno.test("verify refuses HS256 while no secret is set", async () => {
  const asymmetricOnly = createJwtKeyring({ signingKeys: [es256] });
  const token = await signHs256({ alg: "HS256", typ: "JWT" }, encoder.encode(hs256Secret));
  assert.equal(await asymmetricOnly.verify(token), null);
});

Deno.test("verify refuses alg none, with or without a kid", async () => {
  const body = encodeBase64Url(payload);
  for (const header of [{ alg: "none" }, { alg: "none", kid: es256.kid }, { alg: "None" }]) {
    const encoded = encodeJson(header);
    assert.equal(await keyring.verify(`${encoded}.${body}.`), null);
    // Some libraries accept a "signature" after none; still no.
    const [, , signature] = segments(await keyring.sign(payload));
    assert.equal(await keyring.verify(`${encoded}.${body}.${signature}`), null);
  }
});

Deno.test("verify refuses every other algorithm", async () => {
  const body = encodeBase64Url(payload);
  const [, , signature] = segments(await keyring.sign(payload));
  for (const alg of ["ES384", "ES512", "PS256", "RS512", "HS384", "HS512", "EdDSA", "es256", ""]) {
    for (const header of [{ alg }, { alg, kid: es256.kid }, { alg, kid: rs256.kid }]) {
      assert.equal(await keyring.verify(`${encodeJson(header)}.${body}.${signature}`), null);
    }
  }
  const hs512 = await new CompactSign(payload).setProtectedHeader({ alg: "HS512" })
    .sign(encoder.encode(hs256Secret));
  assert.equal(await keyring.verify(hs512), null);
});

// --- header parameters that point elsewhere ----------------------------------------------------

Deno.test("verify refuses jku, x5u, jwk, x5c and crit headers and fetches nothing", async () => {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    requests++;
    return Response.json({
      keys: [createJwtKeyring({ signingKeys: [es256Stranger] }).publicJwks[0]],
    });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}/jwks`;
    const [strangerPublic] = createJwtKeyring({ signingKeys: [es256Stranger] }).publicJwks;
    const headers: Record<string, unknown>[] = [
      { jku: url },
      { x5u: url },
      { jwk: strangerPublic },
      { x5c: ["MIIBfake"] },
      // An extension jose itself understands and would accept: refused all the same.
      { crit: ["b64"], b64: true },
    ];
    for (const extra of headers) {
      // Signed by a key the keyring does not list, pointing at it...
      const stranger = await signWith(es256Stranger, { kid: es256Stranger.kid, ...extra });
      assert.equal(await keyring.verify(stranger), null, Object.keys(extra)[0]);
      const strangerNoKid = await signWith(es256Stranger, extra);
      assert.equal(await keyring.verify(strangerNoKid), null, Object.keys(extra)[0]);
      // ...and even correctly signed by our own key: the parameter alone is refused.
      const ours = await signWith(es256, { kid: es256.kid, ...extra });
      assert.equal(await keyring.verify(ours), null, Object.keys(extra)[0]);
    }
    const nullValued = await signWith(es256, { kid: es256.kid, jku: null });
    assert.equal(await keyring.verify(nullValued), null);
    assert.equal(requests, 0);
  } finally {
    await server.shutdown();
  }
});

// --- canonical encoding and malformed tokens ---------------------------------------------------

Deno.test("verify refuses a padded signature", async () => {
  for (const token of [await keyring.sign(payload), await signWith(rs256, { kid: rs256.kid })]) {
    assert.equal(segments(token)[2].length % 4, 2);
    assert.equal(await keyring.verify(`${token}==`), null);
    assert.equal(await keyring.verify(`${token}=`), null);
  }
});

Deno.test("verify refuses a segment whose unused low bits are altered", async () => {
  const es256Token = await keyring.sign(payload);
  const rs256Token = await signWith(rs256, { kid: rs256.kid });
  for (const token of [es256Token, rs256Token]) {
    const [header, body, signature] = segments(token);
    assert.ok(await keyring.verify(token));
    // The same bytes to a lenient decoder, so only canonical-form checking refuses them.
    assert.deepEqual(
      Uint8Array.fromBase64(withUnusedBitsSet(signature), { alphabet: "base64url" }),
      decodeBase64Url(signature),
    );
    assert.equal(await keyring.verify(`${header}.${body}.${withUnusedBitsSet(signature)}`), null);
    if (body.length % 4 !== 0) {
      assert.equal(await keyring.verify(`${header}.${withUnusedBitsSet(body)}.${signature}`), null);
    }
    if (header.length % 4 !== 0) {
      assert.equal(await keyring.verify(`${withUnusedBitsSet(header)}.${body}.${signature}`), null);
    }
  }
});

Deno.test("verify refuses base64 instead of base64url and stray characters", async () => {
  const [header, body, signature] = segments(await keyring.sign(payload));
  const standard = signature.replaceAll("-", "+").replaceAll("_", "/");
  if (standard !== signature) {
    assert.equal(await keyring.verify(`${header}.${body}.${standard}`), null);
  }
  assert.equal(await keyring.verify(`${header}.${body}.${signature} `), null);
  assert.equal(await keyring.verify(` ${header}.${body}.${signature}`), null);
  assert.equal(await keyring.verify(`${header}.${body}\n.${signature}`), null);
});

Deno.test("verify returns null on malformed tokens and never throws", async () => {
  const token = await keyring.sign(payload);
  const [header, body, signature] = segments(token);
  const malformed: unknown[] = [
    "",
    ".",
    "..",
    "...",
    `${header}.${body}`,
    `${header}.${body}.${signature}.${signature}`,
    `${header}..${signature}`,
    `.${body}.${signature}`,
    `${encodeJson([{ alg: "ES256" }])}.${body}.${signature}`,
    `${encodeJson("ES256")}.${body}.${signature}`,
    `${encodeJson(null)}.${body}.${signature}`,
    `${encodeJson({ alg: 256 })}.${body}.${signature}`,
    `${encodeJson({ kid: es256.kid })}.${body}.${signature}`,
    `${encodeJson({ alg: "ES256", kid: 1 })}.${body}.${signature}`,
    `${encodeJson({ alg: "ES256", kid: ["x"] })}.${body}.${signature}`,
    `${encodeJson({ alg: "ES256", kid: "__proto__" })}.${body}.${signature}`,
    `${encodeBase64Url(encoder.encode("{not json"))}.${body}.${signature}`,
    `${encodeBase64Url(new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]))}.${body}.${signature}`,
    `${header}.${body}.${signature.slice(0, -2)}`,
    `${header}.${body}.AA`,
    "a".repeat(100_000),
    `${header}.${"A".repeat(200_000)}.${signature}`,
    "\u{1F600}.\u{1F600}.\u{1F600}",
    null,
    undefined,
    42,
    {},
  ];
  for (const candidate of malformed) {
    assert.equal(await keyring.verify(candidate as string), null, String(candidate).slice(0, 80));
  }
});

// --- the public keys ---------------------------------------------------------------------------

Deno.test("publicJwks holds only public members, with kid, alg and use sig", () => {
  assert.equal(keyring.publicJwks.length, 2);
  for (const jwk of keyring.publicJwks) {
    for (const member of ["d", "p", "q", "dp", "dq", "qi", "k", "oth", "key_ops", "ext"]) {
      assert.equal(member in jwk, false, member);
    }
    assert.equal(jwk.use, "sig");
  }
  assert.deepEqual(keyring.publicJwks[0], {
    kty: "EC",
    kid: es256.kid,
    alg: "ES256",
    use: "sig",
    crv: "P-256",
    x: es256.x,
    y: es256.y,
  });
  assert.deepEqual(keyring.publicJwks[1], {
    kty: "RSA",
    kid: rs256.kid,
    alg: "RS256",
    use: "sig",
    n: rs256.n,
    e: rs256.e,
  });
});

Deno.test("jose imports each published key and verifies tokens of the keyring with it", async () => {
  for (const signingKey of [es256, rs256]) {
    const single = createJwtKeyring({ signingKeys: [signingKey] });
    const [jwk] = single.publicJwks;
    const key = await importJWK({ ...jwk });
    const checked = await compactVerify(await single.sign(payload), key, {
      algorithms: [signingKey.alg],
    });
    assert.deepEqual(checked.payload, payload);
    assert.equal(checked.protectedHeader.kid, signingKey.kid);
  }
});

Deno.test("with HS256 only, nothing is published", () => {
  assert.deepEqual(createJwtKeyring({ signingKeys: [], hs256Secret }).publicJwks, []);
});

// --- parseSigningKeys --------------------------------------------------------------------------

Deno.test("parseSigningKeys accepts one CLI key or an array of them, in order", () => {
  const single = parseSigningKeys(es256Text);
  assert.ok(single.ok);
  assert.deepEqual(single.keys, [JSON.parse(es256Text)]);
  const several = parseSigningKeys(`[${es256Text}, ${rs256Text}, ${es256NextText}]\n`);
  assert.ok(several.ok);
  assert.deepEqual(several.keys.map((key) => key.kid), [es256.kid, rs256.kid, es256Next.kid]);
});

/** The private and public values of the test keys: no error message may quote any of them. */
const keyMaterial = [es256, rs256].flatMap((key) =>
  ["d", "x", "y", "n", "p", "q", "dp", "dq", "qi"]
    .map((member) => key[member])
    .filter((value): value is string => typeof value === "string")
    .map((value) => value.slice(0, 12))
);

function assertRefused(text: string, expected: RegExp) {
  const parsed = parseSigningKeys(text);
  assert.equal(parsed.ok, false, text.slice(0, 60));
  if (parsed.ok) return;
  assert.match(parsed.message, /^JWT_SIGNING_KEYS is malformed: /);
  assert.match(parsed.message, expected);
  for (const material of keyMaterial) assert.ok(!parsed.message.includes(material), parsed.message);
}

function withMembers(key: SigningKeyJwk, changes: Record<string, unknown>): string {
  const changed: Record<string, unknown> = { ...key, ...changes };
  for (const [member, value] of Object.entries(changes)) {
    if (value === undefined) delete changed[member];
  }
  return JSON.stringify(changed);
}

Deno.test("parseSigningKeys names a value that is not JSON, without quoting it", () => {
  assertRefused(es256Text.slice(0, -1), /is not valid JSON/);
  assertRefused(`${es256Text},${rs256Text}`, /is not valid JSON/);
  assertRefused(es256Text.replace('"d":"', '"d":'), /is not valid JSON/);
  assertRefused("", /is empty/);
  assertRefused("[]", /holds no key/);
  assertRefused(`"${es256.d}"`, /is not a JSON object/);
  assertRefused(`[${es256Text}, "${rs256.d}"]`, /key 2 is not a JSON object/);
});

Deno.test("parseSigningKeys refuses a public key (no d)", () => {
  assertRefused(JSON.stringify(keyring.publicJwks[0]), /the key is not a private key \(no d\)/);
  assertRefused(
    `[${es256Text}, ${JSON.stringify(keyring.publicJwks[1])}]`,
    /key 2 is not a private key \(no d\)/,
  );
});

Deno.test("parseSigningKeys refuses an alg other than ES256/RS256 or not matching kty/crv", () => {
  assertRefused(withMembers(es256, { alg: "ES384" }), /alg other than ES256 or RS256/);
  assertRefused(withMembers(es256, { alg: "HS256" }), /alg other than ES256 or RS256/);
  assertRefused(withMembers(es256, { alg: undefined }), /alg other than ES256 or RS256/);
  assertRefused(withMembers(es256, { alg: "RS256" }), /is RS256 but not kty RSA/);
  assertRefused(withMembers(rs256, { alg: "ES256" }), /is ES256 but not kty EC with crv P-256/);
  assertRefused(withMembers(es256, { crv: "P-384" }), /is ES256 but not kty EC with crv P-256/);
  assertRefused(withMembers(es256, { kty: "oct", k: es256.d }), /not kty EC/);
  assertRefused(withMembers(es256, { use: "enc" }), /use other than sig/);
});

Deno.test("parseSigningKeys refuses a missing or repeated kid", () => {
  assertRefused(withMembers(es256, { kid: undefined }), /the key has no kid/);
  assertRefused(withMembers(es256, { kid: "" }), /has no kid/);
  assertRefused(withMembers(es256, { kid: 7 }), /has no kid/);
  assertRefused(`[${es256Text}, ${rs256Text}, ${es256Text}]`, /key 3 repeats the kid/);
  assertRefused(
    `[${es256Text}, ${withMembers(es256Next, { kid: es256.kid })}]`,
    /key 2 repeats the kid/,
  );
});

Deno.test("parseSigningKeys refuses missing or malformed key members", () => {
  assertRefused(withMembers(es256, { x: undefined }), /has no valid x/);
  assertRefused(withMembers(es256, { y: `${es256.y}=` }), /has no valid y/);
  assertRefused(withMembers(es256, { d: es256.d.slice(0, -2) }), /has no valid d/);
  assertRefused(withMembers(es256, { d: 42 }), /has no valid d/);
  assertRefused(withMembers(rs256, { n: undefined }), /has no valid n/);
  assertRefused(withMembers(rs256, { qi: undefined }), /has no valid qi/);
});

Deno.test("parseSigningKeys refuses an RSA key under 2048 bits", async () => {
  const { privateKey } = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 1024,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const small = { ...await crypto.subtle.exportKey("jwk", privateKey), kid: "small", alg: "RS256" };
  const parsed = parseSigningKeys(JSON.stringify(small));
  assert.equal(parsed.ok, false);
  if (parsed.ok) return;
  assert.match(parsed.message, /RSA key of 1024 bits \(at least 2048 needed\)/);
  for (const member of ["d", "n", "p", "q"] as const) {
    assert.ok(!parsed.message.includes(small[member]!.slice(0, 12)));
  }
});
