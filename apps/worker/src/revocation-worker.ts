import { ClientErrorLog, type Logger } from "@evergreen/observability";
import {
  REVOCATION_QUEUE,
  REVOCATION_QUEUE_PREFIX,
  type RevocationDeps,
  type RevocationJobPayload,
  revocationJobPayload,
  revokeGrant,
} from "@evergreen/refresh";
import { type ConnectionOptions, DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";

export interface RevocationWorkerOptions {
  readonly connection: ConnectionOptions;
  /** Revocations in flight. @defaultValue 5 */
  readonly concurrency?: number;
  /** @defaultValue REVOCATION_QUEUE_PREFIX */
  readonly prefix?: string;
  /** @defaultValue true */
  readonly autorun?: boolean;
  readonly log: Logger;
}

/** Retry of a job that threw (PostgreSQL or Redis away), not of a provider's failure. */
const INFRA_RETRY_MS = 5_000;

/**
 * Consumes revocation jobs: one attempt per job; revokeGrant queues the next attempt itself
 * (Retry-After, backoff), so a provider's failure is not a job failure. An exception (the
 * database away) puts the job back under the same id.
 */
export function startRevocationWorker(
  deps: RevocationDeps,
  options: RevocationWorkerOptions,
): Worker {
  const failures = new ClientErrorLog(options.log);
  const process = async (job: Job<RevocationJobPayload>, token?: string) => {
    const parsed = revocationJobPayload.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError("malformed revocation job payload");
    try {
      const run = await revokeGrant(deps, parsed.data);
      return run.kind === "done" ? run.outcome : run.kind;
    } catch (err) {
      failures.report("revocation worker", err, "grant revocation failed; retrying", {
        job: job.id,
      });
      await job.moveToDelayed(Date.now() + INFRA_RETRY_MS, token);
      throw new DelayedError();
    }
  };
  const worker = new Worker<RevocationJobPayload>(REVOCATION_QUEUE, process, {
    connection: options.connection,
    prefix: options.prefix ?? REVOCATION_QUEUE_PREFIX,
    concurrency: options.concurrency ?? 5,
    // The attempt's claim on the row, not this lock, keeps a stalled job's second run from
    // sending again.
    lockDuration: 2 * deps.settings.timeoutMs,
    autorun: options.autorun ?? true,
  });
  worker.on("failed", (job, err) =>
    options.log.error({ job: job?.id, err }, "revocation job failed"),
  );
  return worker;
}
