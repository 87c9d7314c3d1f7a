import { pickAppValues } from "./app-values";
import { PROVIDERS } from "./registry";
import { parseRetryAfter, secondsToRetryMs } from "./retry-after";
import { refreshTokenExpiresAt, tokenExpiresAt } from "./token-expiry";
import type {
  ErrorOutcome,
  ProviderAnswer,
  ProviderDefinition,
  ProviderId,
  RefreshResult,
} from "./types";

/** Longest wait a provider can impose through Retry-After or `retry_after`. */
export const RETRY_AFTER_CAP_MS = 3_600_000;

const ERROR_CODE_MAX = 64;
const MESSAGE_MAX = 200;
const NUMERIC = /^\d+(?:\.\d+)?$/;
const FORM_LIKE = /^[^\s=&]+=[^\s&]*(?:&[^\s=&]+=[^\s&]*)*$/;
// Runs this long of token-alphabet characters are more likely a token echoed back than
// prose; a GUID (36 characters, as in Microsoft trace ids) stays readable.
const TOKEN_LIKE = /[A-Za-z0-9._~+/=-]{40,}/g;
// Far beyond any epoch-seconds date we will meet: such an expires_at is in milliseconds.
const EPOCH_MS_THRESHOLD = 100_000_000_000;
/**
 * Provider values are stored as they come, so they are bounded first: a control character
 * in `token_type` or `scope` is a string PostgreSQL refuses (NUL), failing the write that
 * holds a rotated refresh token. Lifetimes are bounded by tokenExpiresAt.
 */
const TOKEN_TYPE_MAX = 64;
const SCOPE_MAX = 4096;

/** RFC 6749 §5.2 codes, plus the two that RFC 6749 §4.1.2.1 defines and token endpoints reuse. */
const STANDARD_ERRORS: Readonly<Record<string, ErrorOutcome>> = {
  invalid_grant: "invalid_grant",
  invalid_client: "invalid_client",
  unauthorized_client: "invalid_client",
  server_error: "transient",
  temporarily_unavailable: "transient",
};

type Fields = Record<string, unknown>;

export interface ClassifyOptions {
  /**
   * Which grant was answered: a code exchange may keep its tokens elsewhere (Slack users).
   * @defaultValue "refresh_token"
   */
  readonly grant?: "refresh_token" | "authorization_code";
  /**
   * The integration's lifetime for access tokens whose answer states none (Salesforce: the
   * org's session timeout); null: the provider's fallback. @defaultValue null
   */
  readonly fallbackLifetimeSeconds?: number | null;
  /**
   * What must never be repeated, asked for only when an error may quote it: what the request
   * carried (the refresh token, the client secret and its Basic credentials, a code) and the
   * access token the connection holds. A provider that echoes one in its error would
   * otherwise put it in the stored error, the API's answers, the event feed and webhooks.
   * @defaultValue none
   */
  readonly secrets?: () => readonly string[];
}

/**
 * Classifies a token endpoint's answer to the refresh_token grant. Pure. Error codes and
 * messages are sanitized and never contain the raw body or a token.
 */
export function classifyAnswer(
  provider: ProviderId,
  answer: ProviderAnswer,
  now: Date,
  options: ClassifyOptions = {},
): RefreshResult {
  const { grant = "refresh_token", fallbackLifetimeSeconds = null, secrets = noSecrets } = options;
  const definition: ProviderDefinition = Object.hasOwn(PROVIDERS, provider)
    ? PROVIDERS[provider]
    : PROVIDERS.oauth2;
  const parsed = parseFields(answer);
  const { status } = answer;
  // Tokens are read from `parsed`; everything an error may quote, from `fields`.
  const fields = status >= 200 && status < 300 ? parsed : withoutSecrets(parsed, secrets);

  if (status === 429) {
    return {
      outcome: "rate_limited",
      errorCode: errorCodeOf(definition, fields, status),
      message: messageOf(definition, fields) ?? "provider is rate limiting requests (HTTP 429)",
      retryAfterMs: retryAfterOf(definition, answer, fields, now),
    };
  }
  if (status >= 200 && status < 300) {
    // GitHub (and Slack, Zoho) report errors as HTTP 200; an error code wins over any
    // token, for every provider.
    if (definition.errorShape.codeFields.some((path) => present(at(parsed, path)))) {
      return errorResult(definition, answer, withoutSecrets(parsed, secrets), now);
    }
    const nested = grant === "authorization_code" ? definition.exchangeAnswerAt : null;
    if (nested === null) return successResult(definition, parsed, now, fallbackLifetimeSeconds);
    const inner = at(parsed, nested);
    if (isFields(inner)) return successResult(definition, inner, now, fallbackLifetimeSeconds);
    return {
      outcome: "unknown",
      errorCode: "malformed_response",
      message: `token response has no ${nested} object`,
    };
  }
  if (status >= 500 || status === 408) {
    const retryAfterMs = parseRetryAfter(header(answer, "retry-after"), now, RETRY_AFTER_CAP_MS);
    return {
      outcome: "transient",
      errorCode: errorCodeOf(definition, fields, status),
      message: messageOf(definition, fields) ?? `provider answered HTTP ${status}`,
      ...(retryAfterMs === null ? {} : { retryAfterMs }),
    };
  }
  return errorResult(definition, answer, fields, now);
}

const noSecrets = (): readonly string[] => [];

/**
 * The answer's fields with every string occurrence of `secrets` replaced. Asked for only
 * here, on answers an error may quote: a secret kept sealed (the stored access token) is
 * opened for those alone.
 */
function withoutSecrets(fields: Fields | null, secrets: () => readonly string[]): Fields | null {
  if (fields === null) return fields;
  // Short values would match ordinary words; real tokens and secrets are longer.
  const found = secrets()
    .filter((secret) => secret.length >= 6)
    .flatMap((secret) => [secret, encodeURIComponent(secret)]);
  if (found.length === 0) return fields;
  const scrub = (value: unknown): unknown => {
    if (typeof value === "string") {
      return found.reduce((text, secret) => text.split(secret).join("[redacted]"), value);
    }
    if (Array.isArray(value)) return value.map(scrub);
    if (isFields(value)) {
      return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, scrub(inner)]));
    }
    return value;
  };
  return scrub(fields) as Fields;
}

function successResult(
  definition: ProviderDefinition,
  fields: Fields | null,
  now: Date,
  fallbackLifetimeSeconds: number | null,
): RefreshResult {
  if (fields === null) {
    return {
      outcome: "unknown",
      errorCode: "malformed_response",
      message: "token response is neither JSON nor form data",
    };
  }
  const accessToken = fields.access_token;
  if (typeof accessToken !== "string" || accessToken === "") {
    return {
      outcome: "unknown",
      errorCode: "malformed_response",
      message: "token response has no access_token",
    };
  }
  const refreshToken = fields.refresh_token;
  const tokenType = fields.token_type;
  const appValues = pickAppValues(definition.appValues.answer, fields);
  return {
    outcome: "success",
    accessToken,
    // Missing or empty: the provider keeps the old refresh token valid (Google, Amazon).
    refreshToken: typeof refreshToken === "string" && refreshToken !== "" ? refreshToken : null,
    tokenType: (typeof tokenType === "string" && printable(tokenType, TOKEN_TYPE_MAX)) || "Bearer",
    expiresAt: expiresAtOf(definition, fields, now, fallbackLifetimeSeconds),
    scope: scopeOf(fields.scope),
    // GitHub Apps say `refresh_token_expires_in`, Intuit `x_refresh_token_expires_in`.
    refreshTokenExpiresAt: refreshTokenExpiresAt(
      seconds(fields.refresh_token_expires_in) ?? seconds(fields.x_refresh_token_expires_in),
      now,
    ),
    ...(appValues === null ? {} : { appValues }),
  };
}

function errorResult(
  definition: ProviderDefinition,
  answer: ProviderAnswer,
  fields: Fields | null,
  now: Date,
): RefreshResult {
  const code = firstString(fields, definition.errorShape.codeFields);
  const description = firstString(fields, definition.errorShape.descriptionFields);
  const outcome = code === null ? "unknown" : outcomeOf(definition, code, description);
  const errorCode = errorCodeOf(definition, fields, answer.status);
  const message = messageOf(definition, fields) ?? genericMessage(outcome, answer.status);
  if (outcome === "rate_limited") {
    return {
      outcome,
      errorCode,
      message,
      retryAfterMs: retryAfterOf(definition, answer, fields, now),
    };
  }
  return { outcome, errorCode, message };
}

function outcomeOf(
  definition: ProviderDefinition,
  code: string,
  description: string | null,
): ErrorOutcome {
  for (const rule of definition.descriptionRules) {
    if (rule.error === code && description !== null && rule.pattern.test(description)) {
      return rule.outcome;
    }
  }
  const specific = lookup(definition.errorCodes, code);
  if (specific !== undefined) return specific;
  return lookup(STANDARD_ERRORS, code) ?? "unknown";
}

function lookup(map: Readonly<Record<string, ErrorOutcome>>, code: string) {
  return Object.hasOwn(map, code) ? map[code] : undefined;
}

function genericMessage(outcome: ErrorOutcome, status: number): string {
  switch (outcome) {
    case "invalid_grant":
      return "provider rejected the refresh token";
    case "invalid_client":
      return "provider rejected the client credentials";
    case "rate_limited":
      return "provider is rate limiting requests";
    case "transient":
      return `provider failed temporarily (HTTP ${status})`;
    case "unknown":
      return `provider answered HTTP ${status} without a known error`;
    default: {
      const unreachable: never = outcome;
      return unreachable;
    }
  }
}

function errorCodeOf(
  definition: ProviderDefinition,
  fields: Fields | null,
  status: number,
): string {
  const error = firstString(fields, definition.errorShape.codeFields);
  if (error !== null) {
    // Non-RFC codes may be phrases (Zoho's "Access Denied", Twitch's messages).
    const clean = error
      .replace(TOKEN_LIKE, "redacted")
      .replace(/\s+/g, "_")
      .replace(/[^A-Za-z0-9_.-]/g, "")
      .slice(0, ERROR_CODE_MAX);
    if (clean !== "") return clean;
  }
  return `http_${status}`;
}

function messageOf(definition: ProviderDefinition, fields: Fields | null): string | null {
  const description = firstString(fields, definition.errorShape.descriptionFields);
  if (description === null) return null;
  const clean = description
    .replace(/\p{Cc}+/gu, " ")
    .replace(TOKEN_LIKE, "[redacted]")
    .trim();
  if (clean === "") return null;
  return clean.length > MESSAGE_MAX ? `${clean.slice(0, MESSAGE_MAX - 1)}…` : clean;
}

/** The first of the provider's rate-limit sources that the answer carries, as a wait. */
function retryAfterOf(
  definition: ProviderDefinition,
  answer: ProviderAnswer,
  fields: Fields | null,
  now: Date,
): number | null {
  for (const source of definition.rateLimitSources) {
    const waitMs =
      "header" in source
        ? rateLimitWaitMs(header(answer, source.header.toLowerCase()), source.unit, now)
        : secondsToRetryMs(at(fields, source.field), RETRY_AFTER_CAP_MS);
    if (waitMs !== null) return waitMs;
  }
  return null;
}

function rateLimitWaitMs(
  value: string | undefined,
  unit: "retry_after" | "seconds" | "milliseconds" | "epoch_seconds",
  now: Date,
): number | null {
  if (unit === "retry_after") return parseRetryAfter(value, now, RETRY_AFTER_CAP_MS);
  const number = value === undefined ? null : seconds(value);
  if (number === null) return null;
  switch (unit) {
    case "seconds":
      return secondsToRetryMs(number, RETRY_AFTER_CAP_MS);
    case "milliseconds":
      return secondsToRetryMs(number / 1000, RETRY_AFTER_CAP_MS);
    case "epoch_seconds":
      // A reset already past means "now": wait nothing beyond the caller's floor.
      return secondsToRetryMs(Math.max(0, number - now.getTime() / 1000), RETRY_AFTER_CAP_MS);
    default: {
      const unreachable: never = unit;
      return unreachable;
    }
  }
}

/** The value at a dot path (`errors.0.code`); a number indexes an array. */
function at(fields: Fields | null, path: string): unknown {
  let value: unknown = fields;
  for (const key of path.split(".")) {
    if (Array.isArray(value) && /^\d+$/.test(key)) value = value[Number(key)];
    else if (isFields(value) && Object.hasOwn(value, key)) value = value[key];
    else return undefined;
  }
  return value;
}

function firstString(fields: Fields | null, paths: readonly string[]): string | null {
  for (const path of paths) {
    const value = at(fields, path);
    if (typeof value === "string" && value.trim() !== "") return value.trim();
    // Reddit answers a bad client with `{"error": 401}`.
    if (typeof value === "number" && Number.isInteger(value)) return String(value);
  }
  return null;
}

/** An error marker that is there: not absent, null, false or empty. */
function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false && value !== "";
}

function expiresAtOf(
  definition: ProviderDefinition,
  fields: Fields,
  now: Date,
  fallbackLifetimeSeconds: number | null,
): Date | null {
  const expiresIn = seconds(fields.expires_in);
  const expiresAt = seconds(fields.expires_at);
  return tokenExpiresAt(
    definition.id,
    {
      expiresInMs: expiresIn === null ? null : expiresIn * 1000,
      expiresAtMs:
        expiresAt === null ? null : expiresAt >= EPOCH_MS_THRESHOLD ? expiresAt : expiresAt * 1000,
    },
    now,
    fallbackLifetimeSeconds,
  );
}

function scopeOf(value: unknown): string | null {
  if (typeof value === "string") return printable(value, SCOPE_MAX);
  // A few providers (Twitch) send scopes as a JSON array.
  if (Array.isArray(value) && value.every((item) => typeof item === "string")) {
    return printable(value.join(" "), SCOPE_MAX);
  }
  return null;
}

/** Control characters become spaces, the ends are trimmed, the length capped; null if empty. */
function printable(value: string, max: number): string | null {
  const clean = value
    .replace(/\p{Cc}+/gu, " ")
    .trim()
    .slice(0, max);
  return clean === "" ? null : clean;
}

function seconds(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" && NUMERIC.test(value.trim())) return Number(value.trim());
  return null;
}

function header(answer: ProviderAnswer, name: string): string | undefined {
  for (const [key, value] of Object.entries(answer.headers)) {
    if (key.toLowerCase() !== name) continue;
    return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

/** JSON object, or form-encoded text (GitHub without `Accept: application/json`). */
function parseFields(answer: ProviderAnswer): Fields | null {
  const text = answer.body.trim();
  if (text === "") return null;
  if (text.startsWith("{")) {
    try {
      const value: unknown = JSON.parse(text);
      return isFields(value) ? value : null;
    } catch {
      return null;
    }
  }
  const contentType = header(answer, "content-type") ?? "";
  if (contentType.includes("application/x-www-form-urlencoded") || FORM_LIKE.test(text)) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  return null;
}

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
