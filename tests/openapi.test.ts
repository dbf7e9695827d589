import assert from "node:assert/strict";
import { buildOpenApi, openApiFile, openApiText } from "../local/openapi.ts";

Deno.test("docs/openapi.json is what npm run openapi writes from the zod schemas", async () => {
  const committed = await Deno.readTextFile(openApiFile).catch(() => "");
  assert.ok(committed === openApiText(), "docs/openapi.json is stale: run npm run openapi");
});

Deno.test("the API document covers the app-facing functions and no webhook", () => {
  const document = buildOpenApi() as { openapi: string; paths: Record<string, unknown> };
  assert.equal(document.openapi, "3.1.0");
  const paths = Object.keys(document.paths);
  for (const path of ["/otp-send", "/otp-verify", "/refresh", "/me", "/workspaces", "/jwks"]) {
    assert.ok(paths.includes(path), path);
  }
  for (const path of paths) assert.doesNotMatch(path, /webhook|email-dispatch/);
  const otpSend = document.paths["/otp-send"] as {
    post: { requestBody: { content: { "application/json": { schema: { required: string[] } } } } };
  };
  assert.deepEqual(otpSend.post.requestBody.content["application/json"].schema.required, ["email"]);
});
