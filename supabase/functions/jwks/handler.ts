/**
 * jwks — `GET`, no credentials (mode `none`): the public keys of JWT_SIGNING_KEYS as a JSON Web
 * Key Set, so anything that verifies platform tokens (an API of the product, another service) can
 * fetch them instead of holding a secret. Each key has `kid`, `alg` and `use: "sig"` and never a
 * private member or a `key_ops` that allows signing. The HS256 secret is never published: with
 * HS256 only, `keys` is empty. Cacheable for 5 minutes, so a new key must be listed (second) at
 * least that long before it signs.
 */
import type { Deps } from "../_shared/deps.ts";
import { type Handler, json } from "../_shared/http.ts";
import { defineHandler } from "../_shared/pipeline.ts";

const maxAgeSeconds = 5 * 60; // 5 minutes

export function createHandler(deps: Deps): Handler {
  return defineHandler(
    deps,
    { name: "jwks", methods: ["GET"], cors: true, auth: "none", requires: ["core"] },
    (_req, { core }) =>
      Promise.resolve(
        json({ keys: core.tokens.keyring.publicJwks }, 200, {
          "cache-control": `public, max-age=${maxAgeSeconds}`,
        }),
      ),
  );
}
