import type { WebhookEvent } from "@evergreen/db";

/** SPEC §3 webhook events. */
export const WEBHOOK_EVENT_TYPES = [
  "connection.created",
  /** The first failure of a streak; the streak ends with `connection.recovered`. */
  "connection.refresh_failed",
  "connection.recovered",
  "connection.needs_reauth",
  "connection.error",
  "connection.deleted",
  /** The refresh token ends within REAUTH_SOON_DAYS: the user must authorize again. */
  "connection.reauth_soon",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** A deleted connection has no status left; its events say `deleted`. */
export type WebhookConnectionStatus = "active" | "expired" | "needs_reauth" | "error" | "deleted";

/**
 * What receivers and the feed see of an event: the connection as it was then, and never a
 * token. The same object is the webhook body and, with its id, a feed entry.
 */
export function webhookPayload(event: WebhookEvent) {
  return {
    type: event.type,
    timestamp: event.createdAt.toISOString(),
    data: {
      connectionId: event.connectionId,
      integration: event.integration,
      externalId: event.externalId,
      status: event.status,
      error: event.errorCode ? { code: event.errorCode, message: event.errorMessage } : null,
    },
  };
}
