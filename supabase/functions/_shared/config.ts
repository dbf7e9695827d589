/**
 * Configuration from the environment, parsed once per process into typed settings per feature.
 *
 * A feature whose variables are missing or malformed is not an error at start: its functions
 * answer 503 with the feature's code and a message naming the variable (never its value), so the
 * code can be deployed before a feature is turned on (SPEC §3).
 */
import { z } from "zod";
import { type ApiKeys, parseApiKeys } from "./api_keys.ts";
import type { LogLevel } from "./log.ts";
import { parseSigningKeys, type SigningKeyJwk } from "./signing_key_config.ts";

export type Env = Record<string, string | undefined>;

/** A feature's settings, or why it is off (naming the variable, never the value). */
export type Feature<T> =
  | { ok: true; value: T }
  | { ok: false; variable: string; message: string; malformed: boolean };

const minSecretLength = 32;

const secret = z.string().min(minSecretLength, `must be at least ${minSecretLength} characters`);
const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
const positiveInt = z.coerce.number().int().positive().max(86_400 * 7);
const urlList = z.string().transform((value, ctx) => {
  const items = value.split(",").map((item) => item.trim()).filter(Boolean);
  for (const item of items) {
    if (!URL.canParse(item)) {
      ctx.addIssue({ code: "custom", message: "must be a comma-separated list of absolute URLs" });
      return z.NEVER;
    }
  }
  return items;
});

const coreSchema = z.object({
  SUPABASE_URL: httpUrl,
  SUPABASE_DB_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL"),
  JWT_SIGNING_KEYS: z.string().optional(),
  JWT_SECRET: secret.optional(),
  SESSION_SECRET: secret.optional(),
  ACCESS_TOKEN_TTL_SECONDS: positiveInt.default(3600),
  SIGNUP_MODE: z.enum(["open", "invite"], { error: "must be open or invite" }).default("open"),
  TRUSTED_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(1),
  SUPABASE_EMAIL_CONFIRMATION: z.enum(["required", "off"], { error: "must be required or off" })
    .default("required"),
}).refine((v) => v.JWT_SIGNING_KEYS || v.JWT_SECRET, {
  path: ["JWT_SECRET"],
  message: "is missing (set JWT_SECRET or JWT_SIGNING_KEYS)",
}).refine((v) => v.SESSION_SECRET || v.JWT_SECRET, {
  path: ["SESSION_SECRET"],
  message: "is missing (set SESSION_SECRET or JWT_SECRET)",
});

const databaseSchema = z.object({
  SUPABASE_DB_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL"),
});

const stytchSchema = z.object({
  STYTCH_PROJECT_ID: z.string().min(1),
  STYTCH_SECRET: z.string().min(1),
  STYTCH_API_URL: httpUrl.optional(),
});

const workosSchema = z.object({
  WORKOS_API_KEY: z.string().min(1),
  WORKOS_CLIENT_ID: z.string().min(1),
  WORKOS_REDIRECT_URI: httpUrl,
  WORKOS_COOKIE_PASSWORD: secret,
  WORKOS_API_URL: httpUrl.default("https://api.workos.com"),
  SITE_URL: httpUrl.optional(),
  ALLOWED_REDIRECT_URLS: urlList.default([]),
});

const whatsappSchema = z.object({
  WHATSAPP_VERIFY_TOKEN: z.string().min(1),
  WHATSAPP_APP_SECRET: z.string().min(1),
});

// `addr@domain` or `Name <addr@domain>` (SPEC §11); no control characters, so no header injection.
const emailAddress = /^[^\s@<>",;]+@[^\s@<>",;]+\.[^\s@<>",;]+$/;
const fromAddress = z.string().refine((value) => {
  // deno-lint-ignore no-control-regex -- a CR or LF would let the sender smuggle a header
  if (/[\u0000-\u001f\u007f]/.test(value)) return false;
  const named = /^([^<>]*)<([^<>]+)>$/.exec(value);
  return named ? emailAddress.test(named[2].trim()) : emailAddress.test(value);
}, "must be addr@domain or Name <addr@domain>");

const emailSchema = z.object({
  RESEND_API_KEY: z.string().min(1),
  EMAIL_FROM: fromAddress,
  RESEND_API_URL: httpUrl.default("https://api.resend.com"),
  SITE_URL: httpUrl, // the links of every email point under it
});

const signupWebhookSchema = z.object({
  SIGNUP_HOOK_SECRET: z.string().min(1).optional(),
  SIGNUP_WEBHOOK_TOKEN: z.string().min(minSecretLength).optional(),
}).refine((v) => v.SIGNUP_HOOK_SECRET || v.SIGNUP_WEBHOOK_TOKEN, {
  path: ["SIGNUP_HOOK_SECRET"],
  message: "is missing (set SIGNUP_HOOK_SECRET or SIGNUP_WEBHOOK_TOKEN)",
});

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
    database: feature(databaseSchema, env, (v) => ({ url: v.SUPABASE_DB_URL })),
    stytch: feature(stytchSchema, env, (v) => ({
      projectId: v.STYTCH_PROJECT_ID,
      secret: v.STYTCH_SECRET,
      apiUrl: v.STYTCH_API_URL,
    })),
    workos: feature(workosSchema, env, (v) => ({
      apiKey: v.WORKOS_API_KEY,
      clientId: v.WORKOS_CLIENT_ID,
      redirectUri: v.WORKOS_REDIRECT_URI,
      cookiePassword: v.WORKOS_COOKIE_PASSWORD,
      apiUrl: v.WORKOS_API_URL,
      siteUrl: v.SITE_URL,
      allowedRedirectUrls: v.ALLOWED_REDIRECT_URLS,
    })),
    whatsapp: feature(whatsappSchema, env, (v) => ({
      verifyToken: v.WHATSAPP_VERIFY_TOKEN,
      appSecret: v.WHATSAPP_APP_SECRET,
    })),
    signupWebhook: feature(signupWebhookSchema, env, (v) => ({
      hookSecrets: v.SIGNUP_HOOK_SECRET?.split("|").map((s) => s.trim()).filter(Boolean) ?? [],
      bearerToken: v.SIGNUP_WEBHOOK_TOKEN,
    })),
    email: feature(emailSchema, env, (v) => ({
      resendApiKey: v.RESEND_API_KEY,
      resendApiUrl: v.RESEND_API_URL.replace(/\/+$/, ""),
      from: v.EMAIL_FROM,
      siteUrl: v.SITE_URL,
    })),
  };
}

/** The core settings, with the signing keys and API keys parsed (SPEC §3, §9). */
function coreFeature(env: Env): Feature<CoreConfig> {
  const core = feature(coreSchema, env, (v) => v);
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

/** Reads the schema's variables from env (empty counts as unset) and reports the first problem. */
function feature<S extends z.ZodObject, T>(
  schema: S,
  env: Env,
  build: (value: z.output<S>) => T,
): Feature<T> {
  const names = Object.keys(schema.shape);
  const input = Object.fromEntries(names.map((name) => [name, env[name]?.trim() || undefined]));
  const parsed = schema.safeParse(input);
  if (parsed.success) return { ok: true, value: build(parsed.data) };
  // A variable that is set but malformed is reported before one that is missing.
  const issues = parsed.error.issues;
  const issue = issues.find((i) => input[String(i.path[0])] !== undefined) ?? issues[0];
  const variable = String(issue.path[0] ?? names[0]);
  if (input[variable] === undefined) {
    const message = issue.code === "custom"
      ? `${variable} ${issue.message}`
      : `${variable} is missing`;
    return { ok: false, variable, message, malformed: false };
  }
  return {
    ok: false,
    variable,
    message: `${variable} is malformed: ${issue.message}`,
    malformed: true,
  };
}
