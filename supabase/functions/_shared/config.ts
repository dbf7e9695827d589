/**
 * Configuration from the environment, parsed once per process into typed settings per feature.
 *
 * A feature whose variables are missing or malformed is not an error at start: its functions
 * answer 503 with the feature's code and a message naming the variable (never its value), so the
 * code can be deployed before a feature is turned on (SPEC §3).
 */
import { type ApiKeys, parseApiKeys } from "./api_keys.ts";
import type { LogLevel } from "./log.ts";
import { parseSigningKeys, type SigningKeyJwk } from "./signing_key_config.ts";

export type Env = Record<string, string | undefined>;

/** A feature's settings, or why it is off (naming the variable, never the value). */
export type Feature<T> =
  | { ok: true; value: T }
  | { ok: false; variable: string; message: string; malformed: boolean };

// The variables are read with a few small readers rather than zod: every function parses its
// environment at start, and a cold start should not pay for loading a schema library (zod is
// loaded by the functions that validate request bodies, when they do).

/** A set variable's value, or what is wrong with it (the words after "is malformed: "). */
type Reader<T> = (text: string) => { ok: true; value: T } | { ok: false; problem: string };

/** How one variable is read: its reader, and what it is when unset. */
interface Variable<T> {
  read: Reader<T>;
  /** Unset: this value; `undefined` makes the variable optional; absent makes it required. */
  unset?: { value: T | undefined };
}

const minSecretLength = 32;

const text: Reader<string> = (value) => ({ ok: true, value });
const secret: Reader<string> = (value) =>
  value.length >= minSecretLength
    ? { ok: true, value }
    : { ok: false, problem: `must be at least ${minSecretLength} characters` };
const httpUrl: Reader<string> = (value) =>
  /^https?:$/.test(URL.parse(value)?.protocol ?? "")
    ? { ok: true, value }
    : { ok: false, problem: "must be an http(s) URL" };
const postgresUrl: Reader<string> = (value) =>
  /^postgres(ql)?:\/\//.test(value)
    ? { ok: true, value }
    : { ok: false, problem: "must be a postgres:// URL" };
const integer = (min: number, max: number): Reader<number> => (value) =>
  /^\d+$/.test(value) && Number(value) >= min && Number(value) <= max
    ? { ok: true, value: Number(value) }
    : { ok: false, problem: `must be a whole number from ${min} to ${max}` };
const oneOf = <const T extends string>(choices: readonly T[]): Reader<T> => (value) =>
  (choices as readonly string[]).includes(value)
    ? { ok: true, value: value as T }
    : { ok: false, problem: `must be ${choices.join(" or ")}` };
const urlList: Reader<string[]> = (value) => {
  const items = value.split(",").map((item) => item.trim()).filter(Boolean);
  return items.every((item) => URL.canParse(item))
    ? { ok: true, value: items }
    : { ok: false, problem: "must be a comma-separated list of absolute URLs" };
};
// `addr@domain` or `Name <addr@domain>` (SPEC §11); no control characters, so no header injection.
const emailAddress = /^[^\s@<>",;]+@[^\s@<>",;]+\.[^\s@<>",;]+$/;
const fromAddress: Reader<string> = (value) => {
  const named = /^([^<>]*)<([^<>]+)>$/.exec(value);
  // deno-lint-ignore no-control-regex -- a CR or LF would let the sender smuggle a header
  const ok = !/[\u0000-\u001f\u007f]/.test(value) &&
    (named ? emailAddress.test(named[2].trim()) : emailAddress.test(value));
  return ok
    ? { ok: true, value }
    : { ok: false, problem: "must be addr@domain or Name <addr@domain>" };
};

const optional = { unset: { value: undefined } };
const defaultTo = <T>(value: T) => ({ unset: { value } });

const coreVariables = {
  SUPABASE_URL: { read: httpUrl },
  SUPABASE_DB_URL: { read: postgresUrl },
  JWT_SIGNING_KEYS: { read: text, ...optional },
  JWT_SECRET: { read: secret, ...optional },
  SESSION_SECRET: { read: secret, ...optional },
  ACCESS_TOKEN_TTL_SECONDS: { read: integer(1, 86_400 * 7), ...defaultTo(3600) },
  SIGNUP_MODE: { read: oneOf(["open", "invite"]), ...defaultTo("open" as const) },
  TRUSTED_PROXY_HOPS: { read: integer(0, 10), ...defaultTo(1) },
  SUPABASE_EMAIL_CONFIRMATION: {
    read: oneOf(["required", "off"]),
    ...defaultTo("required" as const),
  },
};

export interface CoreConfig {
  supabaseUrl: string;
  /** `${SUPABASE_URL}/auth/v1`, the issuer Supabase Auth itself uses. */
  issuer: string;
  databaseUrl: string;
  /** The legacy HS256 secret: signs when there is no signing key, verifies while it is set. */
  jwtSecret?: string;
  /** JWT_SIGNING_KEYS: the first signs new access tokens, every one verifies (by `kid`). */
  signingKeys: SigningKeyJwk[];
  /** Refresh-token secrets: the first issues (SESSION_SECRET), every one opens (then JWT_SECRET). */
  sessionSecrets: string[];
  /** The project's publishable and secret API keys (SUPABASE_PUBLISHABLE_KEYS, …). */
  apiKeys: ApiKeys;
  accessTokenTtlSeconds: number;
  signupMode: "open" | "invite";
  /** Proxies in front of the functions: the client IP is the x-forwarded-for hop they added. */
  trustedProxyHops: number;
  /**
   * SUPABASE_EMAIL_CONFIRMATION: `required` (Supabase's default "Confirm email") or `off`, when
   * auth.users.email_confirmed_at proves nothing.
   */
  emailConfirmation: "required" | "off";
}

export interface StytchConfig {
  projectId: string;
  secret: string;
  apiUrl?: string;
}

export interface WorkosConfig {
  apiKey: string;
  clientId: string;
  redirectUri: string;
  cookiePassword: string;
  apiUrl: string;
  siteUrl?: string;
  allowedRedirectUrls: string[];
}

export interface WhatsappConfig {
  verifyToken: string;
  appSecret: string;
}

export interface EmailConfig {
  /** RESEND_API_KEY, sent as `Authorization: Bearer`; never logged. */
  resendApiKey: string;
  /** RESEND_API_URL without a trailing slash (tests and the local emulator point it at loopback). */
  resendApiUrl: string;
  /** EMAIL_FROM: `addr@domain` or `Name <addr@domain>`. */
  from: string;
  /** SITE_URL: links in emails are built under it. */
  siteUrl: string;
}

export interface SignupWebhookConfig {
  hookSecrets: string[];
  bearerToken?: string;
}

export interface Config {
  /** LOG_LEVEL: info (default), warn, error or silent; an unknown value reads as info. */
  logLevel: LogLevel;
  core: Feature<CoreConfig>;
  /** SUPABASE_DB_URL alone: what the webhooks need, which work without the JWT settings. */
  database: Feature<{ url: string }>;
  stytch: Feature<StytchConfig>;
  workos: Feature<WorkosConfig>;
  whatsapp: Feature<WhatsappConfig>;
  signupWebhook: Feature<SignupWebhookConfig>;
  /** Email delivery through Resend's HTTP API (SPEC §11). */
  email: Feature<EmailConfig>;
}

const logLevels: readonly LogLevel[] = ["info", "warn", "error", "silent"];

/** Parses every feature's settings from `env` (a plain record: tests pass their own). */
export function loadConfig(env: Env): Config {
  const logLevel = logLevels.find((level) => level === env.LOG_LEVEL?.trim()) ?? "info";
  return {
    logLevel,
    core: coreFeature(env),
    database: feature({ SUPABASE_DB_URL: { read: postgresUrl } }, env, (v) => ({
      url: v.SUPABASE_DB_URL,
    })),
    stytch: feature(
      {
        STYTCH_PROJECT_ID: { read: text },
        STYTCH_SECRET: { read: text },
        STYTCH_API_URL: { read: httpUrl, ...optional },
      },
      env,
      (v) => ({
        projectId: v.STYTCH_PROJECT_ID,
        secret: v.STYTCH_SECRET,
        apiUrl: v.STYTCH_API_URL,
      }),
    ),
    workos: feature(
      {
        WORKOS_API_KEY: { read: text },
        WORKOS_CLIENT_ID: { read: text },
        WORKOS_REDIRECT_URI: { read: httpUrl },
        WORKOS_COOKIE_PASSWORD: { read: secret },
        WORKOS_API_URL: { read: httpUrl, ...defaultTo("https://api.workos.com") },
        SITE_URL: { read: httpUrl, ...optional },
        ALLOWED_REDIRECT_URLS: { read: urlList, ...defaultTo<string[]>([]) },
      },
      env,
      (v) => ({
        apiKey: v.WORKOS_API_KEY,
        clientId: v.WORKOS_CLIENT_ID,
        redirectUri: v.WORKOS_REDIRECT_URI,
        cookiePassword: v.WORKOS_COOKIE_PASSWORD,
        apiUrl: v.WORKOS_API_URL,
        siteUrl: v.SITE_URL,
        allowedRedirectUrls: v.ALLOWED_REDIRECT_URLS,
      }),
    ),
    whatsapp: feature(
      {
        WHATSAPP_VERIFY_TOKEN: { read: text },
        WHATSAPP_APP_SECRET: { read: text },
      },
      env,
      (v) => ({
        verifyToken: v.WHATSAPP_VERIFY_TOKEN,
        appSecret: v.WHATSAPP_APP_SECRET,
      }),
    ),
    signupWebhook: feature(
      {
        SIGNUP_HOOK_SECRET: { read: text, ...optional },
        SIGNUP_WEBHOOK_TOKEN: { read: secret, ...optional },
      },
      env,
      (v) =>
        v.SIGNUP_HOOK_SECRET || v.SIGNUP_WEBHOOK_TOKEN
          ? {
            hookSecrets: v.SIGNUP_HOOK_SECRET?.split("|").map((s) => s.trim()).filter(Boolean) ??
              [],
            bearerToken: v.SIGNUP_WEBHOOK_TOKEN,
          }
          : missingOneOf("SIGNUP_HOOK_SECRET", "SIGNUP_WEBHOOK_TOKEN"),
    ),
    email: feature(
      {
        RESEND_API_KEY: { read: text },
        EMAIL_FROM: { read: fromAddress },
        RESEND_API_URL: { read: httpUrl, ...defaultTo("https://api.resend.com") },
        SITE_URL: { read: httpUrl }, // the links of every email point under it
      },
      env,
      (v) => ({
        resendApiKey: v.RESEND_API_KEY,
        resendApiUrl: v.RESEND_API_URL.replace(/\/+$/, ""),
        from: v.EMAIL_FROM,
        siteUrl: v.SITE_URL,
      }),
    ),
  };
}

/** The core settings, with the signing keys and API keys parsed (SPEC §3, §9). */
function coreFeature(env: Env): Feature<CoreConfig> {
  const core = feature(
    coreVariables,
    env,
    (v) =>
      !v.JWT_SIGNING_KEYS && !v.JWT_SECRET
        ? missingOneOf("JWT_SECRET", "JWT_SIGNING_KEYS")
        : !v.SESSION_SECRET && !v.JWT_SECRET
        ? missingOneOf("SESSION_SECRET", "JWT_SECRET")
        : v,
  );
  if (!core.ok) return core;
  const v = core.value;
  const signingKeys = v.JWT_SIGNING_KEYS ? parseSigningKeys(v.JWT_SIGNING_KEYS) : null;
  if (signingKeys && !signingKeys.ok) {
    return {
      ok: false,
      variable: "JWT_SIGNING_KEYS",
      message: signingKeys.message,
      malformed: true,
    };
  }
  const apiKeys = parseApiKeys(env);
  if (!apiKeys.ok) return { ...apiKeys, malformed: true };
  const supabaseUrl = v.SUPABASE_URL.replace(/\/+$/, "");
  return {
    ok: true,
    value: {
      supabaseUrl,
      issuer: `${supabaseUrl}/auth/v1`,
      databaseUrl: v.SUPABASE_DB_URL,
      jwtSecret: v.JWT_SECRET,
      signingKeys: signingKeys?.keys ?? [],
      sessionSecrets: [v.SESSION_SECRET, v.JWT_SECRET].filter((s): s is string => !!s),
      apiKeys: apiKeys.keys,
      accessTokenTtlSeconds: v.ACCESS_TOKEN_TTL_SECONDS,
      signupMode: v.SIGNUP_MODE,
      trustedProxyHops: v.TRUSTED_PROXY_HOPS,
      emailConfirmation: v.SUPABASE_EMAIL_CONFIRMATION,
    },
  };
}

/** The settings of a feature, or its first problem: a set but malformed variable before a missing one. */
function feature<V extends Record<string, Variable<unknown>>, T>(
  variables: V,
  env: Env,
  build: (values: Values<V>) => T | Problem,
): Feature<T> {
  const values: Record<string, unknown> = {};
  let missing: string | undefined;
  for (const [name, variable] of Object.entries(variables)) {
    const text = env[name]?.trim() || undefined; // empty counts as unset
    if (text === undefined) {
      if (variable.unset) values[name] = variable.unset.value;
      else missing ??= name;
      continue;
    }
    const read = variable.read(text);
    if (!read.ok) {
      const message = `${name} is malformed: ${read.problem}`;
      return { ok: false, variable: name, message, malformed: true };
    }
    values[name] = read.value;
  }
  if (missing) {
    return { ok: false, variable: missing, message: `${missing} is missing`, malformed: false };
  }
  const value = build(values as Values<V>);
  return value instanceof Problem ? { ok: false, ...value, malformed: false } : { ok: true, value };
}

/** The values a feature's variables read as. */
type Values<V extends Record<string, Variable<unknown>>> = {
  [K in keyof V]: V[K] extends { read: Reader<infer T>; unset: { value: infer U } } ? T | U
    : V[K] extends { read: Reader<infer T> } ? T
    : never;
};

/** A feature that is off for want of either of two variables. */
class Problem {
  constructor(readonly variable: string, readonly message: string) {}
}

function missingOneOf(first: string, second: string): Problem {
  return new Problem(first, `${first} is missing (set ${first} or ${second})`);
}
