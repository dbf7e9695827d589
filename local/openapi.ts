/**
 * The API document of the browser- and app-facing functions (OpenAPI 3.1), generated from the
 * same zod schemas the functions validate with (`z.toJSONSchema`), so it cannot drift from them.
 * Webhooks and server-to-server functions stay out of the public document.
 *
 * `npm run openapi` (deno task openapi) writes docs/openapi.json; tests/openapi.test.ts fails when
 * the committed file is stale; the local server serves it at /openapi.json. Local tooling only.
 */
import { z } from "zod";
import { requestSchemas as otpSendSchemas } from "../supabase/functions/otp-send/handler.ts";
import { requestSchemas as otpVerifySchemas } from "../supabase/functions/otp-verify/handler.ts";
import { requestSchemas as refreshSchemas } from "../supabase/functions/refresh/handler.ts";
import { requestSchemas as workspaceSchemas } from "../supabase/functions/workspaces/handler.ts";

const { sendBody } = await otpSendSchemas();
const { verifyBody } = await otpVerifySchemas();
const { refreshBody } = await refreshSchemas();
const workspaceRequestSchemas = await workspaceSchemas();

export const openApiFile = new URL("../docs/openapi.json", import.meta.url);

const person = z.object({
  id: z.uuid(),
  email: z.email().nullable(),
  display_name: z.string().nullable(),
  created_at: z.string().describe("ISO 8601 timestamp"),
});
const role = z.enum(["owner", "admin", "member"]);
const error = z.object({
  code: z.string().describe("UPPER_SNAKE_CASE, stable"),
  message: z.string().describe("a human sentence"),
});
const tokenResponse = z.object({
  access_token: z.string().describe("platform JWT; `sub` is the person id"),
  token_type: z.literal("bearer"),
  expires_in: z.int(),
  expires_at: z.int().describe("unix seconds"),
  refresh_token: z.string().optional().describe("opaque, rotated on every use"),
  person,
});
const workspace = z.object({ id: z.uuid(), name: z.string(), role });

type Schema = z.ZodType;

interface Operation {
  summary: string;
  /** `publishable`: the apikey header; `user`: a platform access token; `none`. */
  auth: "none" | "publishable" | "user" | "user-or-secret";
  body?: Schema;
  query?: Record<string, { schema: Schema; required?: boolean; description: string }>;
  ok: { status: number; description: string; schema?: Schema };
  errors: number[];
}

const operations: Record<string, Record<string, Operation>> = {
  "/workos-login": {
    get: {
      summary: "Start a WorkOS AuthKit sign-in",
      auth: "none",
      query: {
        return_to: {
          schema: z.string(),
          description: "a path on SITE_URL, or a URL under ALLOWED_REDIRECT_URLS",
        },
        redirect: {
          schema: z.enum(["true", "false"]),
          description: "true: 302 to AuthKit with a browser-binding cookie",
        },
      },
      ok: { status: 200, description: "the AuthKit URL", schema: z.object({ url: z.url() }) },
      errors: [400, 503],
    },
  },
  "/workos-callback": {
    get: {
      summary:
        "AuthKit's redirect back: 302 to return_to with tokens (or an error) in the fragment",
      auth: "none",
      query: {
        code: { schema: z.string(), required: true, description: "from AuthKit" },
        state: { schema: z.string(), required: true, description: "from workos-login" },
      },
      ok: { status: 302, description: "to return_to#access_token=…&refresh_token=…" },
      errors: [400, 503],
    },
  },
  "/otp-send": {
    post: {
      summary: "Email a one-time code (Stytch)",
      auth: "publishable",
      body: sendBody,
      ok: {
        status: 200,
        description: "the same whether or not the person exists",
        schema: z.object({ method_id: z.string() }),
      },
      errors: [400, 401, 413, 415, 429, 502, 503],
    },
  },
  "/otp-verify": {
    post: {
      summary: "Sign in with the emailed code",
      auth: "publishable",
      body: verifyBody,
      ok: {
        status: 200,
        description: "a token response",
        schema: tokenResponse.extend({ is_new_user: z.boolean() }),
      },
      errors: [400, 401, 403, 409, 413, 415, 429, 502, 503],
    },
  },
  "/refresh": {
    post: {
      summary: "Rotate a refresh token, or renew an access token (bearer, no body)",
      auth: "none",
      body: refreshBody,
      ok: { status: 200, description: "a token response", schema: tokenResponse },
      errors: [400, 401, 413, 415, 503],
    },
  },
  "/logout": {
    post: {
      summary: "Revoke the session (and the WorkOS one)",
      auth: "user",
      ok: {
        status: 200,
        description: "WorkOS's logout URL for WorkOS sessions, else null",
        schema: z.object({ logout_url: z.url().nullable() }),
      },
      errors: [401, 503],
    },
  },
  "/me": {
    get: {
      summary: "The signed-in person and their workspaces",
      auth: "user",
      ok: {
        status: 200,
        description: "the person",
        schema: z.object({ person, workspaces: z.array(workspace) }),
      },
      errors: [401, 503],
    },
  },
  "/jwks": {
    get: {
      summary: "The public keys of JWT_SIGNING_KEYS",
      auth: "none",
      ok: {
        status: 200,
        description: "a JSON Web Key Set",
        schema: z.object({ keys: z.array(z.looseObject({ kid: z.string(), alg: z.string() })) }),
      },
      errors: [503],
    },
  },
  ...workspacePaths(),
};

/** The workspaces function's routes (SPEC §10), from the schemas its handler validates with. */
function workspacePaths(): Record<string, Record<string, Operation>> {
  const { invite, updateMember } = workspaceRequestSchemas;
  const invitation = z.object({
    id: z.uuid(),
    email: z.email(),
    role,
    expires_at: z.string().describe("ISO 8601 timestamp"),
  });
  const members = z.object({
    members: z.array(z.object({
      person_id: z.uuid(),
      display_name: z.string().nullable(),
      email: z.string().nullable(),
      role,
      joined_at: z.string(),
    })),
  });
  const user = { auth: "user" as const, errors: [400, 401, 403, 404, 409, 413, 415, 503] };
  return {
    "/workspaces": {
      get: {
        ...user,
        summary: "The person's workspaces, the current one marked",
        ok: {
          status: 200,
          description: "workspaces",
          schema: z.object({ workspaces: z.array(workspace.extend({ current: z.boolean() })) }),
        },
      },
    },
    "/workspaces/{workspace_id}/switch": {
      post: {
        ...user,
        summary: "Make a workspace current: a token response for the same session",
        ok: {
          status: 200,
          description: "a token response",
          schema: tokenResponse.omit({ refresh_token: true }),
        },
      },
    },
    "/workspaces/{workspace_id}/members": {
      get: { ...user, summary: "Members", ok: { status: 200, description: "", schema: members } },
    },
    "/workspaces/{workspace_id}/members/{person_id}": {
      patch: {
        ...user,
        summary: "Change a member's role (owners and admins)",
        body: updateMember,
        ok: { status: 200, description: "the member" },
      },
      delete: {
        ...user,
        summary: "Remove a member, or leave",
        ok: { status: 204, description: "removed" },
      },
    },
    "/workspaces/{workspace_id}/invitations": {
      post: {
        ...user,
        auth: "user-or-secret",
        summary: "Invite an email (owners, admins, or a secret key); re-inviting renews",
        body: invite,
        ok: { status: 201, description: "the invitation (200 when renewed)", schema: invitation },
      },
      get: {
        ...user,
        summary: "Open invitations (owners and admins)",
        ok: {
          status: 200,
          description: "",
          schema: z.object({ invitations: z.array(invitation) }),
        },
      },
    },
    "/workspaces/{workspace_id}/invitations/{invitation_id}": {
      delete: { ...user, summary: "Revoke an invitation", ok: { status: 204, description: "" } },
    },
  };
}

const securitySchemes = {
  apikey: {
    type: "apiKey",
    in: "header",
    name: "apikey",
    description: "a publishable key (sb_publishable_…) or the legacy anon key",
  },
  bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT (platform access token)" },
  secret: { type: "apiKey", in: "header", name: "apikey", description: "a secret key" },
};

const security: Record<Operation["auth"], unknown[]> = {
  none: [],
  publishable: [{ apikey: [] }],
  user: [{ bearer: [] }],
  "user-or-secret": [{ bearer: [] }, { secret: [] }],
};

function jsonSchema(schema: Schema): unknown {
  const { $schema: _schema, ...rest } = z.toJSONSchema(schema, {
    target: "draft-2020-12",
    io: "input",
    unrepresentable: "any",
  }) as Record<string, unknown>;
  return rest;
}

/** The OpenAPI 3.1 document. */
export function buildOpenApi(): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const [path, methods] of Object.entries(operations)) {
    const item: Record<string, unknown> = {};
    const pathParameters = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
      name,
      in: "path",
      required: true,
      schema: { type: "string", format: "uuid" },
    }));
    for (const [method, op] of Object.entries(methods)) {
      const query = Object.entries(op.query ?? {}).map(([name, q]) => ({
        name,
        in: "query",
        required: q.required ?? false,
        description: q.description,
        schema: jsonSchema(q.schema),
      }));
      const responses: Record<string, unknown> = {
        [op.ok.status]: {
          description: op.ok.description || "OK",
          ...(op.ok.schema
            ? { content: { "application/json": { schema: jsonSchema(op.ok.schema) } } }
            : {}),
        },
      };
      for (const status of op.errors) {
        responses[status] = {
          description: "an error",
          content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
        };
      }
      item[method] = {
        summary: op.summary,
        security: security[op.auth],
        ...(pathParameters.length || query.length
          ? { parameters: [...pathParameters, ...query] }
          : {}),
        ...(op.body
          ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: jsonSchema(op.body) } },
            },
          }
          : {}),
        responses,
      };
    }
    paths[path] = item;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "platform-auth-functions",
      version: "2",
      description: "The sign-in gateway's browser- and app-facing functions. " +
        "Every answer carries x-request-id; errors are { code, message }.",
    },
    servers: [{ url: "http://127.0.0.1:54321/functions/v1", description: "npm run dev" }, {
      url: "https://{ref}.supabase.co/functions/v1",
      variables: { ref: { default: "your-project-ref" } },
    }],
    paths,
    components: { schemas: { Error: jsonSchema(error) }, securitySchemes },
  };
}

/** The document as committed: two-space JSON and a final newline. */
export function openApiText(): string {
  return `${JSON.stringify(buildOpenApi(), null, 2)}\n`;
}

if (import.meta.main) {
  await Deno.writeTextFile(openApiFile, openApiText());
  console.log(`wrote ${openApiFile.pathname}`);
}
