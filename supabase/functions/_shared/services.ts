/**
 * The features a function can declare it requires (SPEC §3), how each one's services are built
 * from the configuration, and the one place a feature that is not configured becomes its 503:
 * its own code and a message naming the variable, never the value.
 *
 * Services are built once per process (per `Deps`), on the first request that needs them; the
 * modules behind them are imported then, so a function loads only what its requests use.
 */
import type { ApiKeyMatcher } from "./api_keys.ts";
import type { CoreConfig, EmailConfig, Feature, WhatsappConfig, WorkosConfig } from "./config.ts";
import type { Database } from "./db.ts";
import type { Deps } from "./deps.ts";
import { type ErrorCode, HttpError } from "./http.ts";
import type { ResendClient } from "./resend.ts";
import type { StandardWebhookVerifier } from "./signatures.ts";
import type { StateSealer } from "./state.ts";
import type { StytchOtp } from "./stytch.ts";
import type { SessionTokens } from "./tokens.ts";
import type { WorkosAuth } from "./workos.ts";

/** The platform: core settings, the service connection and the token codecs. */
export interface CoreServices {
  config: CoreConfig;
  sql: Database;
  tokens: SessionTokens;
  /** The project's publishable and secret keys, hashed once. */
  apiKeys: ApiKeyMatcher;
}

export interface WorkosServices {
  config: WorkosConfig;
  auth: WorkosAuth;
  states: StateSealer;
}

export interface SignupServices {
  /** Checks Standard Webhooks signatures (SIGNUP_HOOK_SECRET); null when none is set. */
  verifier: StandardWebhookVerifier | null;
  /** SIGNUP_WEBHOOK_TOKEN, the database webhook's bearer token. */
  bearerToken?: string;
}

export interface EmailServices {
  config: EmailConfig;
  /** Resend's HTTP API with RESEND_API_KEY. */
  resend: ResendClient;
}

export interface Services {
  core: CoreServices;
  /** The service connection alone (the webhooks need no JWT settings). */
  database: Database;
  stytch: StytchOtp;
  workos: WorkosServices;
  whatsapp: WhatsappConfig;
  signup: SignupServices;
  email: EmailServices;
}

export type FeatureName = keyof Services;

type Built<T> = { ok: true; value: T } | { ok: false; message: string };

interface FeatureDefinition<T> {
  code: ErrorCode;
  /** What the feature is, for the 503's message. */
  label: string;
  build(deps: Deps): Promise<Built<T>>;
}

const features: { [F in FeatureName]: FeatureDefinition<Services[F]> } = {
  core: {
    code: "NOT_CONFIGURED",
    label: "Server",
    async build({ config, sql }) {
      if (!config.core.ok) return config.core;
      if (!sql) return { ok: false, message: "SUPABASE_DB_URL is missing" };
      const { createSessionTokens } = await import("./tokens.ts");
      const { createApiKeyMatcher } = await import("./api_keys.ts");
      const core = config.core.value;
      const tokens = createSessionTokens(core);
      const apiKeys = createApiKeyMatcher(core.apiKeys);
      return { ok: true, value: { config: core, sql, tokens, apiKeys } };
    },
  },
  database: {
    code: "NOT_CONFIGURED",
    label: "Server",
    build: ({ config, sql }) =>
      Promise.resolve(
        !config.database.ok
          ? config.database
          : sql
          ? { ok: true, value: sql }
          : { ok: false, message: "SUPABASE_DB_URL is missing" },
      ),
  },
  stytch: {
    code: "STYTCH_NOT_CONFIGURED",
    label: "Stytch sign-in",
    build: (deps) => built(deps.config.stytch, (config) => deps.stytch(config)),
  },
  workos: {
    code: "WORKOS_NOT_CONFIGURED",
    label: "WorkOS sign-in",
    build: (deps) =>
      built(deps.config.workos, async (config) => {
        const { createStateSealer } = await import("./state.ts");
        return {
          config,
          auth: await deps.workos(config),
          states: createStateSealer(config.cookiePassword),
        };
      }),
  },
  whatsapp: {
    code: "WHATSAPP_NOT_CONFIGURED",
    label: "WhatsApp webhook",
    build: (deps) => built(deps.config.whatsapp, (config) => config),
  },
  signup: {
    code: "SIGNUP_WEBHOOK_NOT_CONFIGURED",
    label: "Signup webhook",
    async build({ config }) {
      if (!config.signupWebhook.ok) return config.signupWebhook;
      const { hookSecrets, bearerToken } = config.signupWebhook.value;
      if (hookSecrets.length === 0) return { ok: true, value: { verifier: null, bearerToken } };
      const { createStandardWebhookVerifier } = await import("./signatures.ts");
      const verifier = createStandardWebhookVerifier(hookSecrets);
      if (!verifier) {
        return {
          ok: false,
          message: "SIGNUP_HOOK_SECRET is malformed: each secret must be v1,whsec_<base64>",
        };
      }
      return { ok: true, value: { verifier, bearerToken } };
    },
  },
  email: {
    code: "EMAIL_NOT_CONFIGURED",
    label: "Email delivery",
    build: (deps) =>
      built(deps.config.email, async (config) => {
        const { createResendClient } = await import("./resend.ts");
        return { config, resend: createResendClient(config) };
      }),
  },
};

async function built<C, T>(
  feature: Feature<C>,
  build: (config: C) => T | Promise<T>,
): Promise<Built<T>> {
  return feature.ok ? { ok: true, value: await build(feature.value) } : feature;
}

/**
 * The 503 of a feature that is not configured (SPEC §3): the feature's code, and `message`
 * naming the variable, never its value.
 *
 * @example
 * throw notConfigured("workos", "SITE_URL is missing (a relative return_to resolves against it)");
 */
export function notConfigured(feature: FeatureName, message: string): HttpError {
  const { code, label } = features[feature];
  return new HttpError(503, code, `${label} is not configured: ${message}`);
}

const builtByDeps = new WeakMap<Deps, Map<FeatureName, Promise<Built<unknown>>>>();

/**
 * A feature's services for `deps`, built on first use and shared by every handler built from the
 * same deps; throws the feature's 503 when it is not configured.
 */
export async function requireFeature<F extends FeatureName>(
  deps: Deps,
  feature: F,
): Promise<Services[F]> {
  const result = await buildOnce(deps, feature);
  if (!result.ok) throw notConfigured(feature, result.message);
  return result.value;
}

/** A feature's services, or null when it is not configured (a feature a function can do without). */
export async function optionalFeature<F extends FeatureName>(
  deps: Deps,
  feature: F,
): Promise<Services[F] | null> {
  const result = await buildOnce(deps, feature);
  return result.ok ? result.value : null;
}

function buildOnce<F extends FeatureName>(deps: Deps, feature: F): Promise<Built<Services[F]>> {
  let cache = builtByDeps.get(deps);
  if (!cache) builtByDeps.set(deps, cache = new Map());
  let result = cache.get(feature);
  if (!result) {
    result = features[feature].build(deps);
    // A build that threw (a programmer error) is not kept: the next request tries again.
    result.catch(() => cache.delete(feature));
    cache.set(feature, result);
  }
  return result as Promise<Built<Services[F]>>;
}
