import type { PrismaClient } from "./generated/prisma/client";

export interface PruneEventsOptions {
  /** Events older than this many days are removed (EVENT_RETENTION_DAYS). */
  readonly retentionDays: number;
  /** Rows per delete statement (one short transaction each). @defaultValue 10000 */
  readonly batchSize?: number;
  /** Most statements per call, so a backlog is worked off over several calls. @defaultValue 50 */
  readonly maxBatches?: number;
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
 * Deletes `connection_events` rows past retention through the database function
 * `prune_connection_events` (prisma/migrations/20261201010000_event_retention), the only
 * path the append-only trigger lets a DELETE through. Safe to run from several processes
 * at once: they take turns on an advisory lock and a caller that finds it held stops.
 */
export async function pruneConnectionEvents(
  prisma: PrismaClient,
  { retentionDays, batchSize = 10_000, maxBatches = 50 }: PruneEventsOptions,
): Promise<PruneEventsResult> {
  let removed = 0;
  for (let batches = 0; batches < maxBatches; batches++) {
    const [row] = await prisma.$queryRaw<{ removed: number | null }[]>`
      SELECT prune_connection_events(${retentionDays}::int, ${batchSize}::int) AS removed`;
    const count = row?.removed ?? null;
    if (count === null) return { removed, batches, stopped: "busy" };
    if (count === 0) return { removed, batches: batches + 1, stopped: "done" };
    removed += count;
  }
  return { removed, batches: maxBatches, stopped: "limit" };
}
