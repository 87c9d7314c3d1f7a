import type { Logger } from "@evergreen/observability";
import {
  type DeliveryDeps,
  deliverWebhook,
  deliveryJobPayload,
  WEBHOOK_QUEUE,
  WEBHOOK_QUEUE_PREFIX,
} from "@evergreen/webhooks";
import type { ConnectionOptions, Worker } from "bullmq";
import { startAttemptWorker } from "./attempt-worker";

export interface WebhookWorkerOptions {
  readonly connection: ConnectionOptions;
  /** Deliveries in flight. @defaultValue 20 */
  readonly concurrency?: number;
  /** @defaultValue WEBHOOK_QUEUE_PREFIX */
  readonly prefix?: string;
  /** @defaultValue true */
  readonly autorun?: boolean;
  readonly log: Logger;
}

/** Consumes webhook delivery jobs, one deliverWebhook attempt each (attempt-worker.ts). */
export function startWebhookWorker(deps: DeliveryDeps, options: WebhookWorkerOptions): Worker {
  return startAttemptWorker(
    {
      queue: WEBHOOK_QUEUE,
      payload: deliveryJobPayload,
      attempt: async (payload) => {
        const run = await deliverWebhook(deps, payload);
        return run.kind === "attempted" ? run.outcome : `skipped:${run.reason}`;
      },
      name: "webhook",
      retryMessage: "webhook delivery failed; retrying",
      lockDurationMs: 2 * (deps.settings.timeoutMs ?? 15_000),
    },
    {
      ...options,
      prefix: options.prefix ?? WEBHOOK_QUEUE_PREFIX,
      concurrency: options.concurrency ?? 20,
    },
  );
}
