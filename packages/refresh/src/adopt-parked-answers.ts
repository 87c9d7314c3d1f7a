import type { Logger } from "@evergreen/observability";
import type { RedisClient } from "@evergreen/redis";
import { ParkedAnswers } from "./parked-answers";
import { MAX_REFRESH_QUEUE_SHARDS, type RefreshLayout } from "./shards";

/**
 * The other shard counts this deployment has run with (the sweep records each), plus 1: a
 * deployment from before sharding never recorded its single queue.
 */
export async function otherLayoutCounts(
  redis: RedisClient,
  layout: RefreshLayout,
): Promise<number[]> {
  const counts = new Set((await redis.smembers(layout.registryKey)).map(Number));
  counts.add(1);
  counts.delete(layout.count);
  return [...counts].filter(
    (count) => Number.isInteger(count) && count >= 1 && count <= MAX_REFRESH_QUEUE_SHARDS,
  );
}

/**
 * Moves answers parked under another shard count into `layout`'s shards. A refresh looks
 * for a parked answer only in its connection's current shard; one left under the old count
 * would be missed, and the refresh token the provider already rotated sent again. So every
 * refreshing process runs this before it starts (workers, api), and each sweep does it
 * before it queues a job (docs/adr/0017).
 */
export async function adoptParkedAnswers(
  redis: RedisClient,
  layout: RefreshLayout,
): Promise<number> {
  const parked = new ParkedAnswers(redis, layout.keys("parked"));
  let moved = 0;
  for (const count of await otherLayoutCounts(redis, layout)) {
    moved += await new ParkedAnswers(redis, layout.withCount(count).keys("parked")).moveTo(parked);
  }
  return moved;
}

/**
 * What a refreshing or enqueuing process (api, worker) does with Redis before it starts:
 * records its shard count, so that the scheduler's sweep finds its queues should the count
 * differ from the sweep's (a process not restarted yet in a change of count, or one
 * misconfigured) and moves their jobs; warns when other counts are recorded; and adopts
 * answers parked under them. A Redis it cannot reach yet is only a warning (the scheduler's
 * sweep moves parked answers too), never a failed start.
 */
export async function joinShardLayout(
  redis: RedisClient,
  layout: RefreshLayout,
  log: Logger,
): Promise<void> {
  try {
    await redis.sadd(layout.registryKey, String(layout.count));
    const others = (await redis.smembers(layout.registryKey)).filter(
      (count) => count !== String(layout.count),
    );
    if (others.length > 0) {
      log.warn(
        { shards: layout.count, otherShardCounts: others },
        "queues of another REFRESH_QUEUE_SHARDS exist: unless a change of count is under way, give every process the same value (the scheduler's sweep moves their jobs into its own)",
      );
    }
    const moved = await adoptParkedAnswers(redis, layout);
    if (moved > 0) log.info({ moved }, "parked answers moved from a previous shard layout");
  } catch (err) {
    log.warn({ err }, "could not look for parked answers of a previous shard layout");
  }
}
