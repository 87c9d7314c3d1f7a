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
export function recordWebhookEvent(
  tx: Prisma.TransactionClient,
  input: WebhookEventInput,
): Promise<void> {
  return recordWebhookEvents(tx, [input]);
}

/** recordWebhookEvent for many changes of one transaction (a bulk import): one statement. */
export async function recordWebhookEvents(
  tx: Prisma.TransactionClient,
  inputs: readonly WebhookEventInput[],
): Promise<void> {
  if (inputs.length === 0) return;
  const column = <T>(pick: (input: WebhookEventInput) => T) => inputs.map(pick);
  await tx.$executeRaw`
    WITH event AS (
      INSERT INTO webhook_events
        (type, "connectionId", integration, "externalId", status, "errorCode", "errorMessage")
      SELECT * FROM unnest(${column((i) => i.type)}::text[], ${column((i) => i.connectionId)}::uuid[],
                           ${column((i) => i.integration)}::text[], ${column((i) => i.externalId)}::text[],
                           ${column((i) => i.status)}::text[], ${column((i) => i.errorCode ?? null)}::text[],
                           ${column((i) => i.errorMessage ?? null)}::text[])
      RETURNING id
    )
    INSERT INTO webhook_outbox ("eventId") SELECT id FROM event`;
}
