import type { PrismaClient } from "@evergreen/db";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { REFRESH_JOB, type RefreshJobPayload, refreshJobId } from "./jobs";

export interface ReconcileOptions {
  /** Connections read per keyset page. @defaultValue 1000 */
  readonly batchSize?: number;
  /** @defaultValue () => new Date() */
  readonly now?: () => Date;
}

export interface ReconcileResult {
  /** Connections that should have a pending job. */
  readonly scanned: number;
  /** Jobs that were missing and were added. */
  readonly enqueued: number;
}

/**
 * Makes the queue hold a job for every connection the database says is due to refresh:
 * `active` and `expired` rows with a `nextRefreshAt`, walked in id order (keyset pages).
 * Idempotent, so several schedulers may sweep at once: a job's id names the row version
 * it is for, an existing id is left alone, and two schedulers adding the same id make one
 * job. Jobs of deleted, `needs_reauth` and `error` connections are not removed here: they
 * find the row gone or at another version when they come due, and do nothing.
 */
export async function reconcileQueue(
  prisma: PrismaClient,
  /** The queue, and a plain connection to the Redis it lives in (for pipelined reads). */
  queue: Queue<RefreshJobPayload>,
  redis: Redis,
  { batchSize = 1000, now = () => new Date() }: ReconcileOptions = {},
): Promise<ReconcileResult> {
  let cursor: string | undefined;
  let scanned = 0;
  let enqueued = 0;
  for (;;) {
    const page = await prisma.connection.findMany({
      where: {
        status: { in: ["active", "expired"] },
        nextRefreshAt: { not: null },
        ...(cursor ? { id: { gt: cursor } } : {}),
      },
      orderBy: { id: "asc" },
      take: batchSize,
      select: { id: true, version: true, nextRefreshAt: true },
    });
    const last = page.at(-1);
    if (!last) break;
    cursor = last.id;
    scanned += page.length;

    // One pipelined EXISTS per page instead of a getJob round trip per connection.
    const pipeline = redis.pipeline();
    for (const row of page) {
      pipeline.exists(queue.toKey(refreshJobId({ connectionId: row.id, version: row.version })));
    }
    const exists = (await pipeline.exec()) ?? [];
    const at = now().getTime();
    const missing = page.filter((_, index) => exists[index]?.[1] !== 1);
    if (missing.length === 0) continue;
    await queue.addBulk(
      missing.map((row) => {
        const data = { connectionId: row.id, version: row.version };
        return {
          name: REFRESH_JOB,
          data,
          opts: {
            jobId: refreshJobId(data),
            delay: Math.max(0, (row.nextRefreshAt?.getTime() ?? at) - at),
          },
        };
      }),
    );
    enqueued += missing.length;
  }
  return { scanned, enqueued };
}
