import { ClientErrorLog, type Logger } from "@evergreen/observability";
import {
  backoffMs,
  parseRefreshJobId,
  QUEUE_PREFIX,
  REFRESH_QUEUE,
  type RefreshDeps,
  type RefreshRun,
  refreshConnection,
  WORKER_JOB_RETENTION,
} from "@evergreen/refresh";
import { type ConnectionOptions, DelayedError, type Job, UnrecoverableError } from "bullmq";
import { Consumer } from "./consumer";

export interface RefreshWorkerOptions {
  readonly connection: ConnectionOptions;
  readonly concurrency: number;
  /** BullMQ job lock; a crashed worker's job is handed on after it. */
  readonly lockDurationMs: number;
  /** @defaultValue QUEUE_PREFIX */
  readonly prefix?: string;
  /** Start consuming at once; false to call `run()` once the process is ready. @defaultValue true */
  readonly autorun?: boolean;
  readonly log: Logger;
}

/**
 * Consumes refresh jobs. A job that finds the connection locked or its integration
 * cooling down, or that failed on an exception, goes back to the delayed set under the
 * same id; a job whose connection was rescheduled, deleted or stopped completes as a no-op.
 */
export function startRefreshWorker(deps: RefreshDeps, options: RefreshWorkerOptions): Consumer {
  const failures = new ClientErrorLog(options.log);
  // The id says which connection at which version (docs/adr/0018); the data, empty now and
  // `{connectionId, version}` in jobs added before, is not read.
  const process = async (job: Job<unknown>, token?: string) => {
    const payload = parseRefreshJobId(job.id ?? "");
    if (!payload) throw new UnrecoverableError("malformed refresh job id");
    let run: RefreshRun;
    try {
      run = await refreshConnection(deps, {
        connectionId: payload.connectionId,
        expectedVersion: payload.version,
        source: "worker",
        // Lateness is measured on a job's first run only: re-delays (busy lock, cooldown,
        // retries) are the system working as intended, not lateness.
        measureLateness: job.attemptsStarted <= 1,
      });
    } catch (err) {
      // Provider answers never throw; this is PostgreSQL or Redis unreachable, or a key
      // missing from the ring. The connection is untouched: retry with backoff, for as
      // long as it takes (giving up would only hand the job to the scheduler's sweep).
      const retryInMs = infraRetryDelayMs(deps.settings, job.attemptsStarted);
      failures.report("refresh worker", err, "refresh failed; retrying", {
        job: job.id,
        retryInMs,
      });
      await job.moveToDelayed(Date.now() + retryInMs, token);
      throw new DelayedError();
    }
    switch (run.kind) {
      case "busy":
      case "cooling_down":
        await job.moveToDelayed(Date.now() + run.retryInMs, token);
        throw new DelayedError();
      case "done":
        return run.outcome;
      case "skipped":
        return `skipped:${run.reason}`;
      default:
        return assertNever(run);
    }
  };

  const worker = new Consumer<unknown>(REFRESH_QUEUE, process, {
    connection: options.connection,
    prefix: options.prefix ?? QUEUE_PREFIX,
    concurrency: options.concurrency,
    lockDuration: options.lockDurationMs,
    stalledInterval: options.lockDurationMs,
    // BullMQ's job lock is no guard against double refreshes (a paused worker's job is
    // handed to another); the connection's RedisLock and the row version are.
    maxStalledCount: 1_000,
    autorun: options.autorun ?? true,
    ...WORKER_JOB_RETENTION,
  });
  worker.on("failed", (job, err) => {
    options.log.error({ job: job?.id, err }, "refresh job failed");
  });
  return worker;
}

function assertNever(value: never): never {
  throw new Error(`unhandled refresh run: ${JSON.stringify(value)}`);
}

/**
 * Most a job waits between tries while PostgreSQL or Redis is unreachable. The provider's
 * backoff (up to RETRY_MAX_DELAY_MS, 5 min) protects a provider; an outage of our own ends
 * all at once, and a job still waiting out a long backoff then lets its token expire (seen:
 * 13 of 40 overdue connections refreshed in the 80 s after a 6-minute PostgreSQL outage).
 */
export const INFRA_RETRY_MAX_MS = 15_000;

/** Backoff with jitter for a job that failed on PostgreSQL or Redis, capped for recovery. */
export function infraRetryDelayMs(
  settings: Parameters<typeof backoffMs>[0],
  attempts: number,
): number {
  return Math.min(INFRA_RETRY_MAX_MS, backoffMs(settings, attempts));
}
