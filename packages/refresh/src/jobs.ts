import type { ConnectionStatus } from "@evergreen/db";
import { type ConnectionOptions, Queue } from "bullmq";
import { z } from "zod";

/**
 * The one job catalog: queue, job name, payload schema and options, used by every
 * producer (api, scheduler, worker) and the consumer (worker). Design: docs/adr/0004.
 */

/** Hash-tagged so every key of the queue lands in one Redis Cluster slot. */
export const QUEUE_PREFIX = "{evergreen}";
export const REFRESH_QUEUE = "refresh";
export const REFRESH_JOB = "refresh-connection";

/** Payloads carry ids, never tokens. */
export const refreshJobPayload = z.object({
  connectionId: z.string().uuid(),
  /** The row version this job was scheduled for; any other version makes it a no-op. */
  version: z.number().int().nonnegative(),
});
export type RefreshJobPayload = z.infer<typeof refreshJobPayload>;

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
 * bench/redis-memory.ts). What they said lives in the worker instead: finished jobs are
 * removed (WORKER_JOB_RETENTION) and exceptions are retried by the worker itself, with
 * backoff (apps/worker/src/refresh-worker.ts).
 *
 * Completed and failed jobs are removed, not kept: a connection's next job has another id,
 * and the row keeps its nextRefreshAt, so the scheduler's sweep re-adds a job that failed
 * for good. A kept failed job would count as present.
 */
export const WORKER_JOB_RETENTION = { removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } };

/**
 * One shard's queue; processes use RefreshQueues, which holds one per shard and also names
 * the shard's other keys (locks, cooldowns, parked answers: RefreshLayout.keys).
 * @param prefix Redis key prefix; tests give each run its own.
 */
export function createRefreshQueue(
  connection: ConnectionOptions,
  prefix: string = QUEUE_PREFIX,
): Queue<RefreshJobPayload> {
  return new Queue<RefreshJobPayload>(REFRESH_QUEUE, { connection, prefix });
}
