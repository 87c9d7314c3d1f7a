export {
  type DeliveryDeps,
  type DeliveryOutcome,
  type DeliveryRun,
  type DeliverySettings,
  deliverWebhook,
  webhookDrainMs,
} from "./deliver-webhook";
export {
  checkWebhookUrl,
  WebhookEndpointStore,
  WebhookUrlError,
} from "./endpoint-store";
export {
  WEBHOOK_EVENT_TYPES,
  type WebhookConnectionStatus,
  type WebhookEventType,
  webhookPayload,
} from "./event-types";
export {
  createWebhookQueue,
  DELIVER_JOB,
  type DeliveryJobPayload,
  deliveryJob,
  deliveryJobId,
  deliveryJobPayload,
  WEBHOOK_QUEUE,
  WEBHOOK_QUEUE_PREFIX,
} from "./jobs";
export { type DispatcherOptions, OutboxDispatcher } from "./outbox-dispatcher";
export {
  recordWebhookEvent,
  recordWebhookEvents,
  type WebhookEventInput,
} from "./record-event";
export {
  generateWebhookSecret,
  MalformedSecretError,
  signWebhook,
  type WebhookHeaders,
} from "./signing";
