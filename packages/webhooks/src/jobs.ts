import { type ConnectionOptions, Queue } from "bullmq";
import { z } from "zod";

/**
 * The webhook job catalog: queue, job name, payload schema and options, used by the
 * dispatcher, the api's manual retry and the consumer (worker). Design: docs/adr/0011.
 */

/** Hash-tagged like the refresh queue, so a Redis Cluster keeps each queue in one slot. */
export const WEBHOOK_QUEUE_PREFIX = "{evergreen-webhooks}";
export const WEBHOOK_QUEUE = "webhooks";
export const DELIVER_JOB = "deliver-webhook";

/** Payloads carry ids, never a secret or the event. */
export const deliveryJobPayload = z.object({
  deliveryId: z.string().uuid(),
  /** The attempt this job makes; any other count on the row makes it a no-op. */
  attempt: z.number().int().nonnegative(),
});
export type DeliveryJobPayload = z.infer<typeof deliveryJobPayload>;

/**
 * `<deliveryId>.<attempt>`: adding a job whose id exists is a no-op in BullMQ, so two
 * dispatchers (or a dispatcher and the repair sweep) enqueueing the same attempt make one
 * job, and each retry, whose attempt number is new, gets a job of its own.
 */
export function deliveryJobId({ deliveryId, attempt }: DeliveryJobPayload): string {
  return `${deliveryId}.${attempt}`;
}

/** One job to add: the attempt, due at `at`. */
export function deliveryJob(payload: DeliveryJobPayload, at: Date, now: Date) {
  return {
    name: DELIVER_JOB,
    data: payload,
    opts: {
      jobId: deliveryJobId(payload),
      delay: Math.max(0, at.getTime() - now.getTime()),
      // The row is the record (attempts, outcomes); finished jobs only cost memory.
      removeOnComplete: true,
      removeOnFail: true,
    },
  };
}

/** @param prefix Redis key prefix; tests give each run its own. */
export function createWebhookQueue(
  connection: ConnectionOptions,
  prefix: string = WEBHOOK_QUEUE_PREFIX,
): Queue<DeliveryJobPayload> {
  return new Queue<DeliveryJobPayload>(WEBHOOK_QUEUE, { connection, prefix });
}
