import type { ConnectionStatus } from "@evergreen/db";
import { type ConnectionOptions, Job, type JobJson, type JobProgress, Queue } from "bullmq";

/**
 * The one job catalog: queue, job name, job id (which is the payload) and options, used by every
 * producer (api, scheduler, worker) and the consumer (worker). Design: docs/adr/0004, 0018.
 */

/** Hash-tagged so every key of the queue lands in one Redis Cluster slot. */
export const QUEUE_PREFIX = "{evergreen}";
export const REFRESH_QUEUE = "refresh";
export const REFRESH_JOB = "refresh-connection";

/** What a refresh job is for: ids, never tokens. Carried by its id, not its data. */
export interface RefreshJobPayload {
  readonly connectionId: string;
  /** The row version this job was scheduled for; any other version makes it a no-op. */
  readonly version: number;
}

/**
 * A refresh job's stored data: nothing, since its id says everything (docs/adr/0018). Jobs
 * added before that carry `{connectionId, version}`, which the worker ignores.
 */
export type RefreshJobData = Record<string, never>;
export type RefreshQueue = Queue<RefreshJobData>;

/**
 * `<connectionId>.<version>`: BullMQ ignores an add whose id exists, so a job can never
 * reschedule itself under its own id. Every write that changes a connection's schedule
 * bumps its version, which names the next job; a job whose version is no longer the
 * row's is stale and does nothing. Ids may not contain `:`.
 */
export function refreshJobId({ connectionId, version }: RefreshJobPayload): string {
  return `${connectionId}.${version}`;
}

/** A uuid as PostgreSQL prints it, a dot, the row version. */
const JOB_ID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(0|[1-9]\d*)$/;

/** The inverse of refreshJobId; undefined for an id it did not make. */
export function parseRefreshJobId(id: string): RefreshJobPayload | undefined {
  const match = JOB_ID.exec(id);
  return match?.[1] && match[2] ? { connectionId: match[1], version: Number(match[2]) } : undefined;
}

/** Statuses whose connections are refreshed, and so have a job. */
export const REFRESHABLE: readonly ConnectionStatus[] = ["active", "expired"];

/**
 * Jobs carry no options beyond their id and delay: BullMQ stores a job's options in its
 * hash, and at a million scheduled connections every byte counts (SPEC §7: 1 GB of Redis;
 * attempts, backoff and removal options were 100 of a job's ~1,040 bytes, see
 * bench/redis-memory.ts; docs/adr/0018 for the rest). What they said lives in the worker
 * instead: finished jobs are removed (WORKER_JOB_RETENTION) and exceptions are retried by
 * the worker itself, with backoff (apps/worker/src/refresh-worker.ts).
 *
 * Completed and failed jobs are removed, not kept: a connection's next job has another id,
 * and the row keeps its nextRefreshAt, so the scheduler's sweep re-adds a job that failed
 * for good. A kept failed job would count as present.
 */
export const WORKER_JOB_RETENTION = { removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } };

/**
 * A job as BullMQ stores it, minus `opts.jobId`: the id is already the hash's key, and
 * those 48 bytes made `opts` longer than `hash-max-listpack-value` (64 bytes by default),
 * which turns the whole job hash from a compact listpack into a hashtable (docs/adr/0018).
 * Nothing reads `opts.jobId` back: BullMQ takes a stored job's id from its key.
 */
class CompactJob<
  DataType = unknown,
  ReturnType = unknown,
  NameType extends string = string,
  ProgressType extends JobProgress = JobProgress,
> extends Job<DataType, ReturnType, NameType, ProgressType> {
  override asJSON(): JobJson {
    const json = super.asJSON();
    const { jobId: _id, ...opts } = json.opts;
    return { ...json, opts };
  }
}

class CompactQueue extends Queue<RefreshJobData> {
  protected override get Job(): typeof Job {
    return CompactJob;
  }
}

/**
 * One shard's queue, compact (CompactQueue); processes use RefreshQueues, which holds one
 * per shard and also names the shard's other keys (locks, cooldowns, parked answers:
 * RefreshLayout.keys).
 * @param prefix Redis key prefix; tests give each run its own.
 * @param declare Whether constructing it writes the queue's meta hash, as BullMQ does: not
 * for a queue only looked at (a previous shard layout the sweep drains).
 */
export function createRefreshQueue(
  connection: ConnectionOptions,
  prefix: string = QUEUE_PREFIX,
  declare = true,
): RefreshQueue {
  return new CompactQueue(REFRESH_QUEUE, { connection, prefix, skipMetasUpdate: !declare });
}
