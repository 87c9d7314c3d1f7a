import type { PrismaClient } from "./generated/prisma/client";

export interface PruneBatchOptions {
  /** Rows per delete statement (one short transaction each); defaults per table below. */
  readonly batchSize?: number;
  /** Most statements per call, so a backlog is worked off over several calls. @defaultValue 50 */
  readonly maxBatches?: number;
}

export interface PruneEventsOptions extends PruneBatchOptions {
  /** Events older than this many days are removed (EVENT_RETENTION_DAYS). */
  readonly retentionDays: number;
}

export interface PruneEventsResult {
  readonly removed: number;
  readonly batches: number;
  /**
   * Why the call stopped: `done` at the retention boundary, `limit` after `maxBatches`
   * (more remains for the next call), `busy` when another prune held the lock (it carries on).
   */
  readonly stopped: "done" | "limit" | "busy";
}

/**
 * Calls `batch` (one prune function call: rows removed, or null when another process holds
 * that function's lock) until it removes nothing, finds the lock held, or has run
 * `maxBatches` times.
 */
async function inBatches(
  maxBatches: number,
  batch: () => Promise<{ removed: number | null }[]>,
): Promise<PruneEventsResult> {
  let removed = 0;
  for (let batches = 0; batches < maxBatches; batches++) {
    const [row] = await batch();
    const count = row?.removed ?? null;
    if (count === null) return { removed, batches, stopped: "busy" };
    if (count === 0) return { removed, batches: batches + 1, stopped: "done" };
    removed += count;
  }
  return { removed, batches: maxBatches, stopped: "limit" };
}

/**
 * Deletes `connection_events` rows past retention through the database function
 * `prune_connection_events` (prisma/migrations/20261201010000_event_retention), the only
 * path the append-only trigger lets a DELETE through. Safe to run from several processes
 * at once: they take turns on an advisory lock and a caller that finds it held stops.
 * `batchSize` defaults to 10,000.
 */
export function pruneConnectionEvents(
  prisma: PrismaClient,
  { retentionDays, batchSize = 10_000, maxBatches = 50 }: PruneEventsOptions,
): Promise<PruneEventsResult> {
  return inBatches(
    maxBatches,
    () => prisma.$queryRaw`
      SELECT prune_connection_events(${retentionDays}::int, ${batchSize}::int) AS removed`,
  );
}

/**
 * Deletes `webhook_events` past retention, with their deliveries and attempts, through
 * `prune_webhook_events` (prisma/migrations/20261201033141_webhook_retention). An event
 * still in the outbox or with a pending delivery is kept, whatever its age. Same locking
 * as pruneConnectionEvents. `batchSize` defaults to 1,000 events: each takes its
 * deliveries and attempts with it (about 50 ms a batch with two endpoints, docs/adr/0007).
 */
export function pruneWebhookEvents(
  prisma: PrismaClient,
  { retentionDays, batchSize = 1_000, maxBatches = 50 }: PruneEventsOptions,
): Promise<PruneEventsResult> {
  return inBatches(
    maxBatches,
    () => prisma.$queryRaw`
      SELECT prune_webhook_events(${retentionDays}::int, ${batchSize}::int) AS removed`,
  );
}

/**
 * Deletes connect sessions expired for more than a day (a late callback gets
 * `expired_state` until then, docs/adr/0009) through `prune_connect_sessions`. Same locking
 * as pruneConnectionEvents. `batchSize` defaults to 1,000.
 */
export function pruneConnectSessions(
  prisma: PrismaClient,
  { batchSize = 1_000, maxBatches = 50 }: PruneBatchOptions = {},
): Promise<PruneEventsResult> {
  return inBatches(
    maxBatches,
    () => prisma.$queryRaw`SELECT prune_connect_sessions(${batchSize}::int) AS removed`,
  );
}
