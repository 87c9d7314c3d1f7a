export type {
  AccessToken,
  CodeExchangeInput,
  Connection,
  ConnectionInput,
  ConnectionPage,
  ConnectionQuery,
  ConnectSession,
  ConnectSessionInput,
  EventPage,
  EventQuery,
  EvergreenClientOptions,
  FeedEvent,
  Integration,
  IntegrationInput,
  ProviderFetchOptions,
  TokenOptions,
  Webhook,
  WebhookDelivery,
  WebhookDeliveryPage,
  WebhookDeliveryQuery,
  WebhookInput,
  WebhookWithSecret,
} from "./client.js";
export { EvergreenClient } from "./client.js";
export {
  ConflictError,
  EvergreenError,
  ForbiddenError,
  IntegrationError,
  InvalidRequestError,
  NeedsReauthError,
  NotFoundError,
  RetryLaterError,
  UnauthorizedError,
  UnreachableError,
} from "./errors.js";
export type { Operations, Schemas } from "./generated/openapi-types.js";
export type { VerifyOptions, WebhookEvent, WebhookEventType } from "./webhooks.js";
export { verifyWebhook, WebhookVerificationError } from "./webhooks.js";
