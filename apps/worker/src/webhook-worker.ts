import { ClientErrorLog, type Logger } from "@evergreen/observability";
import {
  type DeliveryDeps,
  type DeliveryJobPayload,
  deliverWebhook,
  deliveryJobPayload,
  WEBHOOK_QUEUE,
  WEBHOOK_QUEUE_PREFIX,
} from "@evergreen/webhooks";
import { type ConnectionOptions, DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";

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

/** Retry of a job that threw (PostgreSQL or Redis away), not of a receiver's failure. */
const INFRA_RETRY_MS = 5_000;

/**
 * Consumes webhook delivery jobs: one attempt per job; the use case enqueues the next
 * attempt itself, so a receiver's failure is not a job failure. An exception (the
 * database away) puts the job back under the same id.
 */
export function startWebhookWorker(deps: DeliveryDeps, options: WebhookWorkerOptions): Worker {
  // One line per window for jobs failing the same way, not one per job (PostgreSQL away).
  const failures = new ClientErrorLog(options.log);
  const process = async (job: Job<DeliveryJobPayload>, token?: string) => {
    const parsed = deliveryJobPayload.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError("malformed webhook job payload");
    try {
      const run = await deliverWebhook(deps, parsed.data);
      return run.kind === "attempted" ? run.outcome : `skipped:${run.reason}`;
    } catch (err) {
      failures.report("webhook worker", err, "webhook delivery failed; retrying", { job: job.id });
      await job.moveToDelayed(Date.now() + INFRA_RETRY_MS, token);
      throw new DelayedError();
    }
  };
  const timeoutMs = deps.settings.timeoutMs ?? 15_000;
  const worker = new Worker<DeliveryJobPayload>(WEBHOOK_QUEUE, process, {
    connection: options.connection,
    prefix: options.prefix ?? WEBHOOK_QUEUE_PREFIX,
    concurrency: options.concurrency ?? 20,
    // Longer than one attempt; the delivery's claim in PostgreSQL, not this lock, is what
    // keeps a stalled job's second run from sending while the first still does.
    lockDuration: 2 * timeoutMs,
    autorun: options.autorun ?? true,
  });
  worker.on("failed", (job, err) => options.log.error({ job: job?.id, err }, "webhook job failed"));
  return worker;
}
