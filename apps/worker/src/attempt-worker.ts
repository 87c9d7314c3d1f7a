import { ClientErrorLog, type Logger } from "@evergreen/observability";
import { type ConnectionOptions, DelayedError, type Job, UnrecoverableError } from "bullmq";
import type { z } from "zod";
import { Consumer } from "./consumer";

/** Retry of a job that threw (PostgreSQL or Redis away), not of the remote side's failure. */
const INFRA_RETRY_MS = 5_000;

export interface AttemptWorkerOptions {
  readonly connection: ConnectionOptions;
  /** Attempts in flight. */
  readonly concurrency: number;
  readonly prefix: string;
  /** @defaultValue true */
  readonly autorun?: boolean;
  readonly log: Logger;
}

/** One kind of outbound attempt (a revocation, a webhook delivery) consumed from its queue. */
export interface AttemptJob<P> {
  readonly queue: string;
  readonly payload: z.ZodType<P>;
  /** Makes one attempt; what it returns is the job's result. */
  readonly attempt: (payload: P) => Promise<string>;
  /** In logs: e.g. "webhook" makes "webhook worker", "webhook job failed". */
  readonly name: string;
  /** Logged (once per window of like failures) when an attempt throws. */
  readonly retryMessage: string;
  /**
   * BullMQ's job lock: longer than one attempt. The attempt's claim in PostgreSQL, not this
   * lock, keeps a stalled job's second run from sending while the first still does.
   */
  readonly lockDurationMs: number;
}

/**
 * Consumes jobs of one attempt each: the use case queues the next attempt itself
 * (Retry-After, backoff), so the remote side's failure is not a job failure. An exception
 * (the database away) puts the job back under the same id; a malformed payload fails it.
 */
export function startAttemptWorker<P>(
  job: AttemptJob<P>,
  options: AttemptWorkerOptions,
): Consumer<P> {
  // One line per window for jobs failing the same way, not one per job (PostgreSQL away).
  const failures = new ClientErrorLog(options.log);
  const process = async (current: Job<P>, token?: string) => {
    const parsed = job.payload.safeParse(current.data);
    if (!parsed.success) throw new UnrecoverableError(`malformed ${job.name} job payload`);
    try {
      return await job.attempt(parsed.data);
    } catch (err) {
      failures.report(`${job.name} worker`, err, job.retryMessage, { job: current.id });
      await current.moveToDelayed(Date.now() + INFRA_RETRY_MS, token);
      throw new DelayedError();
    }
  };
  const worker = new Consumer<P>(job.queue, process, {
    connection: options.connection,
    prefix: options.prefix,
    concurrency: options.concurrency,
    lockDuration: job.lockDurationMs,
    autorun: options.autorun ?? true,
  });
  worker.on("failed", (failed, err) =>
    options.log.error({ job: failed?.id, err }, `${job.name} job failed`),
  );
  return worker;
}
