import type { AuthorizationRule, ProviderDefinition, RateLimitSource } from "./types";

/**
 * RFC 6585 §4 and RFC 9110 §10.2.3 `Retry-After`, then the JSON `retry_after` some
 * providers (Discord, Slack's SDKs) put in the body. A provider file that reads vendor
 * headers lists these first: a standard header, where sent, is the provider's own word.
 */
export const STANDARD_RATE_LIMIT_SOURCES: readonly RateLimitSource[] = [
  { header: "retry-after", unit: "retry_after" },
  { field: "retry_after", unit: "seconds" },
];

/** The RFC 6749 behaviour every provider starts from; a provider file states only its quirks. */
const RFC_6749_DEFAULTS = {
  placeholders: {},
  // client_secret_basic is the RFC's mandatory-to-implement method (§2.3.1).
  clientAuth: "basic",
  bodyFormat: "form",
  // RFC 6749 §6 makes scope optional and many servers answer invalid_scope to a scope they
  // did not expect on refresh; leaving it out keeps the originally granted scopes.
  scope: { send: "never" },
  extraParams: {},
  headers: {},
  // RFC 6749 §5.1 only RECOMMENDS expires_in. Refreshing a token that would have lived
  // longer costs one request; handing out an expired one is what Evergreen exists to avoid.
  fallbackLifetimeSeconds: 3600,
  errorsInOkBody: false,
  errorShape: { codeFields: ["error"], descriptionFields: ["error_description"] },
  errorCodes: {},
  descriptionRules: [],
  rateLimitSources: STANDARD_RATE_LIMIT_SOURCES,
  appValues: { answer: [], callback: [] },
  exchangeAnswerAt: null,
  rotatesRefreshToken: false,
  // RFC 6749 §6 lets the server revoke the old refresh token at once: no grace unless the
  // provider documents one.
  reuseGrace: null,
  clientIdFormat: null,
  // RFC 7009 is optional: a provider file states its revocation endpoint, or why none.
  revocation: null,
  // RFC 6749 defines no way to check an access token; RFC 7662 introspection is per
  // deployment, so it is the integration's `introspectionUrl`.
  validation: null,
} as const satisfies Omit<ProviderDefinition, "id" | "displayName" | "tokenUrl" | "authorization">;

const AUTHORIZATION_DEFAULTS = {
  url: null,
  placeholders: {},
  ensureScopes: [],
  params: {},
  // RFC 6749 §3.3: scopes are space-delimited.
  scopeParam: "scope",
  scopeSeparator: " ",
  // RFC 7636 §5: a server that does not know PKCE ignores its parameters, so sending them
  // costs nothing and protects the code wherever the server does check them.
  pkce: true,
} as const satisfies AuthorizationRule;

/** What a provider file spells out: its identity and token URL, plus what differs from RFC 6749. */
export type ProviderSpec = Pick<ProviderDefinition, "id" | "displayName" | "tokenUrl"> &
  Partial<Omit<ProviderDefinition, "authorization">> & {
    readonly authorization?: Partial<AuthorizationRule>;
  };

/** A full definition: the RFC 6749 defaults overridden by the provider's own fields. */
export function defineProvider(spec: ProviderSpec): ProviderDefinition {
  const { id, displayName, tokenUrl, authorization, ...overrides } = spec;
  return {
    id,
    displayName,
    tokenUrl,
    ...RFC_6749_DEFAULTS,
    ...overrides,
    authorization: { ...AUTHORIZATION_DEFAULTS, ...authorization },
  };
}
