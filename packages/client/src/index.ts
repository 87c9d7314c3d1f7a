export type {
  AccessToken,
  CodeExchangeInput,
  Connection,
  ConnectionInput,
  ConnectionPage,
  ConnectionQuery,
  ConnectSession,
  ConnectSessionInput,
  EvergreenClientOptions,
  Integration,
  IntegrationInput,
  ProviderFetchOptions,
  TokenOptions,
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
} from "./errors.js";
export type { Operations, Schemas } from "./generated/openapi-types.js";
export type {
  CreatedWebhook,
  EventPage,
  FeedEvent,
  VerifyOptions,
  Webhook,
  WebhookDelivery,
  WebhookEvent,
  WebhookEventType,
  WebhookInput,
} from "./webhooks.js";
export { verifyWebhook, WebhookVerificationError } from "./webhooks.js";
