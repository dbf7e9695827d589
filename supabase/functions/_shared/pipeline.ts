/**
 * The one pipeline every function runs through (SPEC §4, §9): request id, CORS, the method check,
 * the features the function requires (503 when one is not configured), the caller check of its
 * auth mode (401), the handler, one mapping of errors to `{code, message}` (anything unexpected is
 * a bare 500 whose detail only reaches the log), and one log line per request.
 *
 * A function declares what it needs; no handler builds a 503 or a 401 of the pipeline itself.
 *
 * @example
 * export function createHandler(deps: Deps): Handler {
 *   return defineHandler(deps, {
 *     name: "me", methods: ["GET"], cors: true, auth: "user", requires: ["core"],
 *   }, async (_req, { core, claims, now }) => json(await readMe(core.sql, …, now)));
 * }
 */
import { authenticate, type AuthMode, type Caller } from "./auth.ts";
import { clientIp } from "./client_ip.ts";
import type { Deps } from "./deps.ts";
import { corsHeaders, errorResponse, type Handler, HttpError, withHeaders } from "./http.ts";
import { errorFields, type Logger } from "./log.ts";
import {
  type FeatureName,
  notConfigured,
  optionalFeature,
  requireFeature,
  type Services,
} from "./services.ts";

export interface HandlerSpec<
  Required extends FeatureName,
  Optional extends FeatureName,
  Auth extends AuthMode,
> {
  /** Function name, used in logs. */
  name: string;
  /** Allowed methods; anything else is 405 with `Allow`. */
  methods: readonly string[];
  /** Answer CORS preflight and add CORS headers (browser-facing functions). */
  cors?: boolean;
  /** Who may call the function (auth.ts). */
  auth: Auth;
  /** Features without which the function answers their 503. */
  requires: readonly Required[];
  /** Features the function uses when configured (null in the context otherwise). */
  optional?: readonly Optional[];
}

export interface RequestContext {
  requestId: string;
  /** The request's logger: every line carries the function name and the request id. */
  log: Logger;
  /**
   * The client's IP for rate limits, normalised: the x-forwarded-for hop the platform's proxy
   * added (client_ip.ts), else the peer; "unknown" when it cannot be parsed.
   */
  clientIp: string;
  /** The time of the request, read once. */
  now: Date;
}

/** What a handler receives: the request's context, its features' services and its caller. */
export type Context<
  Required extends FeatureName,
  Optional extends FeatureName,
  Auth extends AuthMode,
> =
  & RequestContext
  & { [F in Required]: Services[F] }
  & { [F in Optional]: Services[F] | null }
  & Caller[Auth];

/** Builds a function's handler from its declaration and its logic. */
export function defineHandler<
  const Required extends FeatureName,
  const Auth extends AuthMode,
  const Optional extends FeatureName = never,
>(
  deps: Deps,
  spec: HandlerSpec<Required, Optional, Auth>,
  handle: (req: Request, ctx: Context<Required, Optional, Auth>) => Promise<Response>,
): Handler {
  const allow = spec.methods.join(", ");
  const trustedProxyHops = deps.config.core.ok ? deps.config.core.value.trustedProxyHops : 1;
  // Preflight answers carry the whole CORS policy; other answers only need the origin rule, and
  // expose the request id to browser code.
  const preflightHeaders = { ...corsHeaders, "access-control-allow-methods": `${allow}, OPTIONS` };
  const responseHeaders: Record<string, string> = spec.cors
    ? { "access-control-allow-origin": "*", "access-control-expose-headers": "x-request-id" }
    : {};

  async function run(req: Request, context: RequestContext): Promise<Response> {
    if (spec.cors && req.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: preflightHeaders });
    }
    if (!spec.methods.includes(req.method)) {
      throw new HttpError(405, "METHOD_NOT_ALLOWED", `Method ${req.method} is not allowed`, {
        allow,
      });
    }
    // A malformed core setting (not a missing feature) breaks every function alike (SPEC §13.11).
    const { core } = deps.config;
    if (!core.ok && core.malformed) throw notConfigured("core", core.message);
    const ctx: Record<string, unknown> = { ...context };
    for (const feature of spec.requires) ctx[feature] = await requireFeature(deps, feature);
    for (const feature of spec.optional ?? []) ctx[feature] = await optionalFeature(deps, feature);
    if (spec.auth !== "none") {
      const services = await requireFeature(deps, "core");
      Object.assign(ctx, await authenticate(req, spec.auth, services, context.now));
    }
    return await handle(req, ctx as Context<Required, Optional, Auth>);
  }

  return async function handler(req, info): Promise<Response> {
    const startedAt = performance.now();
    const requestId = crypto.randomUUID();
    const log = deps.log.child({ fn: spec.name, request_id: requestId });
    const peerAddress = (info?.remoteAddr as Deno.NetAddr | undefined)?.hostname;
    let res: Response;
    try {
      const ip = clientIp(req, { trustedProxyHops, peerAddress });
      res = await run(req, { requestId, log, clientIp: ip, now: deps.now() });
    } catch (error) {
      if (!(error instanceof HttpError)) log.error("unhandled_error", errorFields(error));
      res = errorResponse(error, requestId);
    }
    res = withHeaders(res, { ...responseHeaders, "x-request-id": requestId });
    log.info("request", () => ({
      method: req.method,
      path: new URL(req.url).pathname, // never the query: it can carry codes and state
      status: res.status,
      duration_ms: Math.round(performance.now() - startedAt),
    }));
    return res;
  };
}
