import type { Prisma } from "@evergreen/db";
import type { WebhookConnectionStatus, WebhookEventType } from "./event-types";

export interface WebhookEventInput {
  readonly type: WebhookEventType;
  readonly connectionId: string;
  /** The integration's key. */
  readonly integration: string;
  readonly externalId: string;
  readonly status: WebhookConnectionStatus;
  readonly errorCode?: string | null;
  readonly errorMessage?: string | null;
}

/**
 * Records an event and its outbox row inside `tx`, the transaction of the change it
 * describes: committed together, or (rolled back) not at all. The refresh path writes the
 * same two rows in its own SQL statement (packages/refresh/src/connection-store.ts).
 */
export async function recordWebhookEvent(
  tx: Prisma.TransactionClient,
  input: WebhookEventInput,
): Promise<void> {
  await tx.$executeRaw`
    WITH event AS (
      INSERT INTO webhook_events
        (type, "connectionId", integration, "externalId", status, "errorCode", "errorMessage")
      VALUES (${input.type}, ${input.connectionId}::uuid, ${input.integration}, ${input.externalId},
              ${input.status}, ${input.errorCode ?? null}, ${input.errorMessage ?? null})
      RETURNING id
    )
    INSERT INTO webhook_outbox ("eventId") SELECT id FROM event`;
}
