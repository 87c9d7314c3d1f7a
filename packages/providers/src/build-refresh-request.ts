import { ProviderConfigError } from "./errors";
import { PROVIDERS } from "./registry";
import type {
  BuildRefreshRequestOptions,
  InsecureTokenUrls,
  IntegrationSettings,
  PlaceholderRule,
  ProviderDefinition,
  RefreshGrant,
  TokenRequest,
} from "./types";

const PLACEHOLDER = /\{([A-Za-z0-9_]+)\}/g;
const ANY_BRACE = /[{}]/;
/** Scheme and authority (userinfo, host, port): all of a URL before its path. */
const BEFORE_PATH = /^[^/?#]*(?:\/\/[^/?#]*)?/;

/**
 * Builds the refresh_token grant request (RFC 6749 §6) for one connection. Pure: it performs
 * no I/O and returns a fresh object on every call.
 *
 * @throws ProviderConfigError when the integration or the metadata cannot give a safe URL.
 */
export function buildRefreshRequest(
  settings: IntegrationSettings,
  grant: RefreshGrant,
  options: BuildRefreshRequestOptions = {},
): TokenRequest {
  const definition = definitionOf(settings);
  const params: Record<string, string> = {
    grant_type: "refresh_token",
    refresh_token: grant.refreshToken,
  };
  const scope = scopeParam(definition, settings.scopes ?? []);
  if (scope !== null) params.scope = scope;
  return buildTokenRequest(definition, settings, params, grant.metadata, options);
}

/**
 * The provider definition an integration names, once its client id is known.
 *
 * @throws ProviderConfigError for an unknown provider or an empty client id.
 */
export function definitionOf(
  settings: Pick<IntegrationSettings, "provider" | "clientId">,
): ProviderDefinition {
  const definition: ProviderDefinition | undefined = Object.hasOwn(PROVIDERS, settings.provider)
    ? PROVIDERS[settings.provider]
    : undefined;
  if (definition === undefined) {
    throw new ProviderConfigError(settings.provider, "unknown_provider", "unknown provider");
  }
  if (settings.clientId === "") {
    throw new ProviderConfigError(definition.id, "missing_client_id", "client id is empty");
  }
  return definition;
}

/**
 * The token host of one connection where the provider picks it per connection (a Shopify
 * shop, an Okta org, a Salesforce My Domain, a Zoho data centre): rate limits there are
 * that host's, so a 429 from one shop must not hold every other shop of the integration.
 * Null where every connection of the integration shares one token host (the catalog's fixed
 * one, or the integration's own URL, whose host holds no placeholder), or where the
 * metadata names no valid host (the refresh then stops on its configuration anyway).
 */
export function connectionTokenHost(
  settings: Pick<IntegrationSettings, "provider" | "tokenUrl">,
  metadata: Record<string, unknown> | undefined,
): string | null {
  if (settings.tokenUrl?.trim()) return null;
  const definition = Object.hasOwn(PROVIDERS, settings.provider)
    ? PROVIDERS[settings.provider]
    : undefined;
  const template = definition?.tokenUrl ?? null;
  if (!definition || template === null) return null;
  if (!ANY_BRACE.test(BEFORE_PATH.exec(template)?.[0] ?? "")) return null;
  try {
    const url = resolveUrl(
      "token",
      definition,
      template,
      definition.placeholders,
      null,
      metadata,
      false,
    );
    return new URL(url).host;
  } catch (error) {
    if (error instanceof ProviderConfigError) return null;
    throw error;
  }
}

/**
 * A request to the token endpoint carrying one grant's parameters: every grant of a
 * provider reaches the same URL with the same client authentication, body format, extra
 * parameters and headers.
 */
export function buildTokenRequest(
  definition: ProviderDefinition,
  settings: IntegrationSettings,
  grantParams: Readonly<Record<string, string>>,
  metadata: Record<string, unknown> | undefined,
  options: BuildRefreshRequestOptions,
): TokenRequest {
  const url = resolveUrl(
    "token",
    definition,
    definition.tokenUrl,
    definition.placeholders,
    settings.tokenUrl,
    metadata,
    options.allowInsecureTokenUrls,
  );
  const clientAuth = settings.clientAuth ?? definition.clientAuth;
  const bodyFormat = settings.bodyFormat ?? definition.bodyFormat;

  const params: Record<string, string> = { ...grantParams };
  for (const [name, value] of Object.entries(definition.extraParams)) params[name] = value;

  const headers: Record<string, string> = {
    accept: "application/json",
    ...definitionHeaders(definition, settings.clientId),
  };
  if (clientAuth === "basic") {
    headers.authorization = basicAuthorization(settings.clientId, settings.clientSecret);
  } else {
    params.client_id = settings.clientId;
    // Public clients have no secret; an empty client_secret makes some servers reject them.
    if (settings.clientSecret !== "") params.client_secret = settings.clientSecret;
  }

  if (bodyFormat === "json") {
    headers["content-type"] = "application/json";
    return { url, method: "POST", headers, body: JSON.stringify(params) };
  }
  headers["content-type"] = "application/x-www-form-urlencoded";
  return { url, method: "POST", headers, body: new URLSearchParams(params).toString() };
}

/**
 * The definition's own headers, `{client_id}` filled in. Control characters in the client
 * id are dropped: a header value cannot hold them, and one must not start a new header.
 */
export function definitionHeaders(
  definition: Pick<ProviderDefinition, "headers">,
  clientId: string,
): Record<string, string> {
  const headers: Record<string, string> = {};
  const printableId = clientId.replace(/\p{Cc}/gu, "");
  for (const [name, value] of Object.entries(definition.headers)) {
    headers[name.toLowerCase()] = value.replaceAll("{client_id}", printableId);
  }
  return headers;
}

/** Which of a provider's URLs is meant: what it is called in messages and problem codes. */
export type UrlKind = "token" | "authorization" | "revocation" | "introspection";

/**
 * The integration's URL, else the definition's, with its placeholders filled from
 * metadata and the result checked as `checkProviderUrl` checks it.
 */
export function resolveUrl(
  kind: UrlKind,
  definition: ProviderDefinition,
  catalogTemplate: string | null,
  placeholders: ProviderDefinition["placeholders"],
  override: string | null | undefined,
  metadata: Record<string, unknown> | undefined,
  allowInsecure: InsecureTokenUrls | undefined,
): string {
  const overridden = override?.trim() || null;
  const template = overridden ?? catalogTemplate;
  if (template === null) {
    throw new ProviderConfigError(
      definition.id,
      `missing_${kind}_url`,
      `provider "${definition.id}" needs the integration's ${kind}Url`,
    );
  }
  // Catalog templates are reviewed code: Amazon's region maps to three fixed hosts.
  if (overridden !== null) placeholdersOnlyInPath(kind, definition.id, overridden);
  const resolved = template.replace(PLACEHOLDER, (match, name: string) => {
    const rule = Object.hasOwn(placeholders, name) ? placeholders[name] : undefined;
    return rule === undefined ? match : placeholderValue(definition, name, rule, metadata);
  });
  if (ANY_BRACE.test(resolved)) {
    throw new ProviderConfigError(
      definition.id,
      "unresolved_placeholder",
      `${kind} URL has a placeholder this provider does not define`,
    );
  }

  return checkProviderUrl(kind, definition.id, resolved, allowInsecure);
}

/**
 * An integration's token URL comes from an API caller, and placeholders are filled from
 * connection metadata, which apps pass through from anywhere. In the host or port, a
 * placeholder would let metadata choose where the client secret and refresh token go (or,
 * in an authorization URL, where users are sent to sign in); in the path it only picks a
 * tenant on the host the integration names.
 *
 * @throws ProviderConfigError when a brace sits anywhere but in the path, or the
 * template is not a URL.
 */
function placeholdersOnlyInPath(kind: UrlKind, provider: string, template: string): void {
  const beforePath = BEFORE_PATH.exec(template)?.[0] ?? "";
  const afterPath = template.slice(beforePath.length).search(/[?#]/);
  if (
    ANY_BRACE.test(beforePath) ||
    (afterPath >= 0 && ANY_BRACE.test(template.slice(beforePath.length + afterPath))) ||
    braceOutsideParsedPath(parseUrl(kind, provider, template))
  ) {
    throw new ProviderConfigError(
      provider,
      "placeholder_outside_path",
      `${kind} URL placeholders may only sit in the path, never in the scheme, host, port or query`,
    );
  }
}

/**
 * The parser that routes the request has the last word on where the path starts: after a
 * special scheme it skips any run of slashes, backslashes, tabs and newlines, so in
 * `https:///{tenant}/token` the placeholder is the host, not the path's first segment.
 */
function braceOutsideParsedPath({ protocol, username, password, host, search, hash }: URL) {
  return /[{}]|%7b|%7d/i.test(protocol + username + password + host + search + hash);
}

function parseUrl(kind: UrlKind, provider: string, url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new ProviderConfigError(provider, `invalid_${kind}_url`, `${kind} URL is not a URL`);
  }
}

/**
 * Checks a token URL, or an integration's token URL template, the way every refresh
 * will: a URL, placeholders only in its path, no credentials in it, https unless
 * `allowInsecure` says otherwise. Returns it normalised.
 *
 * @throws ProviderConfigError naming what is wrong.
 */
export function checkTokenUrl(
  provider: string,
  url: string,
  allowInsecure: InsecureTokenUrls = false,
): string {
  return checkProviderUrl("token", provider, url, allowInsecure);
}

/**
 * Checks an authorization URL, or an integration's template of one, as every connect
 * session will. Held to the token URL's rules: users type their password behind it, and
 * the code comes back through it.
 *
 * @throws ProviderConfigError naming what is wrong.
 */
export function checkAuthorizationUrl(
  provider: string,
  url: string,
  allowInsecure: InsecureTokenUrls = false,
): string {
  return checkProviderUrl("authorization", provider, url, allowInsecure);
}

/**
 * Checks a revocation URL as every revocation will: held to the token URL's rules, since
 * the request carries a token and often the client secret.
 *
 * @throws ProviderConfigError naming what is wrong.
 */
export function checkRevocationUrl(
  provider: string,
  url: string,
  allowInsecure: InsecureTokenUrls = false,
): string {
  return checkProviderUrl("revocation", provider, url, allowInsecure);
}

const INSECURE_MESSAGES: Record<UrlKind, string> = {
  token: "token URL must use https (the request carries the client secret and refresh token)",
  authorization: "authorization URL must use https (users sign in behind it)",
  revocation:
    "revocation URL must use https (the request carries a token and often the client secret)",
  introspection:
    "introspection URL must use https (the request carries the client secret and an access token)",
};

/**
 * Checks an integration's RFC 7662 introspection URL, as every validation will: it
 * receives the client secret and the access token, so the token URL's rules apply.
 *
 * @throws ProviderConfigError naming what is wrong.
 */
export function checkIntrospectionUrl(
  provider: string,
  url: string,
  allowInsecure: InsecureTokenUrls = false,
): string {
  return checkProviderUrl("introspection", provider, url, allowInsecure);
}

function checkProviderUrl(
  kind: UrlKind,
  provider: string,
  url: string,
  allowInsecure: InsecureTokenUrls = false,
): string {
  placeholdersOnlyInPath(kind, provider, url);
  const parsed = parseUrl(kind, provider, url);
  // Credentials in a URL end up in logs and proxies; the client secret has its own place.
  if (parsed.username !== "" || parsed.password !== "") {
    throw new ProviderConfigError(
      provider,
      `invalid_${kind}_url`,
      `${kind} URL must not contain credentials`,
    );
  }
  // Not a web URL at all: saying it must use https would suggest http were a choice.
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new ProviderConfigError(
      provider,
      `invalid_${kind}_url`,
      `${kind} URL must be an https URL, not ${parsed.protocol}`,
    );
  }
  const insecureAllowed =
    parsed.protocol === "http:" &&
    (allowInsecure === true || (allowInsecure === "loopback" && isLoopback(parsed.hostname)));
  if (parsed.protocol !== "https:" && !insecureAllowed) {
    throw new ProviderConfigError(provider, `insecure_${kind}_url`, INSECURE_MESSAGES[kind]);
  }
  return parsed.toString();
}

function isLoopback(hostname: string): boolean {
  return (
    hostname === "localhost" ||
    hostname === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/**
 * The placeholder values of `metadata` that the token URL (the integration's own, else the
 * definition's) uses, checked against their rules: a connect session builds only the
 * authorization URL, and a value only the token URL uses (Zoho's data centre) would fail
 * at the exchange, after the user consented. Values no URL uses are the app's business.
 *
 * @throws ProviderConfigError (`invalid_placeholder`) for the first value its rule refuses.
 */
export function checkTokenUrlPlaceholders(
  definition: ProviderDefinition,
  integrationTokenUrl: string | null,
  metadata: Record<string, unknown> | undefined,
): void {
  const template = integrationTokenUrl?.trim() || definition.tokenUrl || "";
  for (const [, name = ""] of template.matchAll(PLACEHOLDER)) {
    const rule = Object.hasOwn(definition.placeholders, name)
      ? definition.placeholders[name]
      : undefined;
    if (rule !== undefined && metadata?.[name] !== undefined) {
      placeholderValue(definition, name, rule, metadata);
    }
  }
}

function placeholderValue(
  definition: ProviderDefinition,
  name: string,
  rule: PlaceholderRule,
  metadata: Record<string, unknown> | undefined,
): string {
  const given = metadata?.[name];
  const value = given === undefined || given === null || given === "" ? rule.default : given;
  if (typeof value === "string") {
    if ("pattern" in rule && rule.pattern.test(value)) return value;
    if ("values" in rule && Object.hasOwn(rule.values, value)) {
      const mapped = rule.values[value];
      if (mapped !== undefined) return mapped;
    }
  }
  // The value is not echoed: metadata comes from the app and may hold anything.
  throw new ProviderConfigError(
    definition.id,
    "invalid_placeholder",
    `connection metadata "${name}" is not an allowed value`,
  );
}

function scopeParam(definition: ProviderDefinition, configured: readonly string[]): string | null {
  const rule = definition.scope;
  if (rule.send === "never") return null;
  const scopes = configured.flatMap((scope) => scope.split(/\s+/)).filter((scope) => scope !== "");
  if (scopes.length === 0) return null;
  for (const required of rule.ensure) if (!scopes.includes(required)) scopes.push(required);
  return scopes.join(" ");
}

/**
 * The credentials a built request's Authorization header carries (`Basic <base64>`, whole and
 * the encoded part), for `ClassifyOptions.secrets`: the client secret, base64-encoded.
 */
export function headerCredentials(request: {
  readonly headers?: Readonly<Record<string, string>>;
}): string[] {
  const value = request.headers?.authorization;
  if (!value) return [];
  return [value, value.slice(value.indexOf(" ") + 1)];
}

/** The `Authorization` header of client_secret_basic. */
export function basicAuthorization(clientId: string, clientSecret: string): string {
  // RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined by ":" and
  // base64-encoded; a ":" or "%" in a secret would otherwise be misread by the server.
  const pair = `${formEncode(clientId)}:${formEncode(clientSecret)}`;
  return `Basic ${Buffer.from(pair, "utf8").toString("base64")}`;
}

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 Appendix B). */
export function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}
