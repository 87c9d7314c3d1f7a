export { appValuesOf, callbackAppValues } from "./app-values";
export {
  buildAuthorizationUrl,
  pkceChallenge,
  RESERVED_AUTHORIZATION_PARAMS,
} from "./build-authorization-url";
export { buildCodeExchangeRequest } from "./build-code-exchange-request";
export {
  buildRefreshRequest,
  checkAuthorizationUrl,
  checkIntrospectionUrl,
  checkRevocationUrl,
  checkTokenUrl,
  checkTokenUrlPlaceholders,
  connectionTokenHost,
  headerCredentials,
} from "./build-refresh-request";
export {
  buildRevocationRequest,
  classifyRevocationAnswer,
  type RevocationRequest,
  type RevocationResult,
  type RevocationTokenType,
  revocationRuleOf,
  revocationTokenType,
} from "./build-revocation-request";
export { type ClassifyOptions, classifyAnswer, RETRY_AFTER_CAP_MS } from "./classify-answer";
export { ProviderConfigError, type ProviderConfigProblem } from "./errors";
export { PROVIDERS } from "./registry";
export { backoffMs, parseRetryAfter } from "./retry-after";
export { type StatedExpiry, tokenExpiresAt } from "./token-expiry";
export {
  type AppValues,
  type AuthorizationRequest,
  type AuthorizationRule,
  type AuthorizationSettings,
  type BodyFormat,
  type BuildRefreshRequestOptions,
  type ClientAuth,
  type ClientIdFormat,
  type CodeGrant,
  type DescriptionRule,
  type ErrorOutcome,
  type ErrorShape,
  type InsecureTokenUrls,
  type IntegrationSettings,
  isProviderId,
  type PlaceholderRule,
  PROVIDER_IDS,
  type ProviderAnswer,
  type ProviderDefinition,
  type ProviderId,
  type RateLimitSource,
  type RefreshGrant,
  type RefreshOutcome,
  type RefreshResult,
  type ReuseGrace,
  type RevocationRule,
  type ScopeRule,
  type TokenRequest,
  type ValidationRule,
} from "./types";
export {
  buildValidationRequest,
  classifyValidation,
  type ValidationKind,
  type ValidationRequest,
  type ValidationResult,
  type ValidationSettings,
} from "./validation";
