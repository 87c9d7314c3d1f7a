import { basicAuthorization, definitionOf, resolveUrl } from "./build-refresh-request";
import { parseRetryAfter } from "./retry-after";
import type {
  BuildRefreshRequestOptions,
  IntegrationSettings,
  ProviderAnswer,
  RevocationRule,
} from "./types";

/** Which of a connection's tokens a revocation presents. */
export type RevocationTokenType = "refresh_token" | "access_token";

/** A revocation, as data: the egress client sends it. */
export interface RevocationRequest {
  url: string;
  method: "POST" | "DELETE";
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
}

/**
 * The provider's revocation rule for this integration, or null when a grant of it cannot be
 * revoked (no endpoint, or a generic `oauth2` integration without `revocationUrl`).
 */
export function revocationRuleOf(
  settings: Pick<IntegrationSettings, "provider" | "clientId" | "revocationUrl">,
): RevocationRule | null {
  const rule = definitionOf(settings).revocation;
  if (rule === null) return null;
  if (rule.kind === "rfc7009" && rule.url === null && !settings.revocationUrl?.trim()) return null;
  return rule;
}

/**
 * The token a revocation should present, given what the connection holds. RFC 7009 §2.1:
 * revoking the refresh token revokes the grant's access tokens too (Google, Discord), so it
 * is preferred; GitHub's grant DELETE takes only an access token.
 */
export function revocationTokenType(rule: RevocationRule, hasRefreshToken: boolean) {
  return rule.kind === "rfc7009" && hasRefreshToken ? "refresh_token" : "access_token";
}

/**
 * Builds the request revoking one token's grant. Pure.
 *
 * @throws ProviderConfigError when the integration cannot give a safe URL.
 */
export function buildRevocationRequest(
  settings: IntegrationSettings,
  rule: RevocationRule,
  token: { value: string; type: RevocationTokenType },
  options: BuildRefreshRequestOptions = {},
): RevocationRequest {
  const definition = definitionOf(settings);
  const headers: Record<string, string> = { accept: "application/json" };
  if (rule.kind === "github_grant") {
    const url = resolveUrl(
      "revocation",
      definition,
      rule.url.replace("{client_id}", encodeURIComponent(settings.clientId)),
      {},
      null,
      undefined,
      options.allowInsecureTokenUrls,
    );
    headers.authorization = basicAuthorization(settings.clientId, settings.clientSecret);
    headers["content-type"] = "application/json";
    // GitHub's REST API refuses requests without these.
    headers.accept = "application/vnd.github+json";
    headers["x-github-api-version"] = "2022-11-28";
    return {
      url,
      method: "DELETE",
      headers,
      body: JSON.stringify({ access_token: token.value }),
    };
  }
  if (rule.kind === "bearer") {
    const url = resolveUrl(
      "revocation",
      definition,
      rule.url,
      {},
      null,
      undefined,
      options.allowInsecureTokenUrls,
    );
    headers.authorization = `Bearer ${token.value}`;
    return { url, method: "POST", headers, body: "" };
  }
  const url = resolveUrl(
    "revocation",
    definition,
    rule.url,
    {},
    settings.revocationUrl,
    undefined,
    options.allowInsecureTokenUrls,
  );
  const params: Record<string, string> = { token: token.value, token_type_hint: token.type };
  if (rule.clientAuth === "token_endpoint") {
    if ((settings.clientAuth ?? definition.clientAuth) === "basic") {
      headers.authorization = basicAuthorization(settings.clientId, settings.clientSecret);
    } else {
      params.client_id = settings.clientId;
      if (settings.clientSecret !== "") params.client_secret = settings.clientSecret;
    }
  }
  if (rule.bodyFormat === "json") {
    headers["content-type"] = "application/json";
    return { url, method: "POST", headers, body: JSON.stringify(params) };
  }
  headers["content-type"] = "application/x-www-form-urlencoded";
  return { url, method: "POST", headers, body: new URLSearchParams(params).toString() };
}

export type RevocationResult =
  /** The provider revoked the grant. */
  | { outcome: "revoked" }
  /** RFC 7009 §2.2: the token is already invalid (or of a type the server cannot revoke). */
  | { outcome: "already_dead"; errorCode: string }
  /** Worth another try: 503 (§2.2.1), 429, 5xx. `retryAfterMs` from `Retry-After`. */
  | { outcome: "retry"; errorCode: string; retryAfterMs: number | null }
  /** Refused for good (client credentials, a malformed request): retrying cannot help. */
  | { outcome: "failed"; errorCode: string };

/** RFC 7009 §2.2.1 error codes meaning nothing is left to revoke. */
const DEAD_TOKEN_ERRORS = new Set(["invalid_token", "unsupported_token_type"]);

/** What a revocation endpoint's answer means. Never returns the body: it may echo the token. */
export function classifyRevocationAnswer(
  answer: ProviderAnswer,
  now: Date,
  retryAfterCapMs: number,
  kind: RevocationRule["kind"] = "rfc7009",
): RevocationResult {
  const { status } = answer;
  if (status >= 200 && status < 300) return { outcome: "revoked" };
  // GitHub's grant DELETE answers 404 for a grant it no longer has (revoked by the user, or
  // by an earlier try whose answer was lost) and 422 for a token it does not take as valid:
  // either way nothing is left to revoke.
  if (kind === "github_grant" && (status === 404 || status === 422)) {
    return { outcome: "already_dead", errorCode: `http_${status}` };
  }
  const code = errorField(answer.body);
  if (status === 400 && code !== null && DEAD_TOKEN_ERRORS.has(code)) {
    return { outcome: "already_dead", errorCode: code };
  }
  if (status === 503 || status === 429 || status >= 500) {
    const header = answer.headers["retry-after"] ?? answer.headers["Retry-After"];
    const retryAfter = Array.isArray(header) ? header[0] : header;
    return {
      outcome: "retry",
      errorCode: `http_${status}`,
      retryAfterMs: parseRetryAfter(retryAfter, now, retryAfterCapMs),
    };
  }
  // Only a short, word-shaped code is kept: bodies are the provider's and unbounded.
  return { outcome: "failed", errorCode: code ?? `http_${status}` };
}

function errorField(body: string): string | null {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== "object" || parsed === null) return null;
    const error = (parsed as Record<string, unknown>).error;
    return typeof error === "string" && /^[\w.-]{1,64}$/.test(error) ? error : null;
  } catch {
    return null;
  }
}
