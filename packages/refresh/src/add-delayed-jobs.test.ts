import { randomBytes, randomUUID } from "node:crypto";
import { createRedis } from "@evergreen/redis";
import { Worker } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { addMissingDelayedJobs } from "./add-delayed-jobs";
import { createRefreshQueue, REFRESH_QUEUE, type RefreshQueue, refreshJobId } from "./jobs";
import { enqueueRefresh } from "./schedule";
import { TEST_REDIS_URL } from "./testing";

let redis: Redis;
let prefix: string;
let queue: RefreshQueue;
beforeEach(() => {
  redis = createRedis(TEST_REDIS_URL, "producer");
  prefix = `{test-${randomBytes(4).toString("hex")}}`;
  queue = createRefreshQueue(redis, prefix);
});
afterEach(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  await redis.quit();
});

const newId = () => refreshJobId({ connectionId: randomUUID(), version: 3 });

describe("addMissingDelayedJobs", () => {
  it("writes the job hash and delayed-set score BullMQ writes for the same due time", async () => {
    const payload = { connectionId: randomUUID(), version: 3 };
    const viaBullmq = refreshJobId(payload);
    await enqueueRefresh(queue, payload, new Date(Date.now() + 3_600_000));
    const expected = await redis.hgetall(queue.toKey(viaBullmq));
    // The same clock reading and due time as BullMQ's own job.
    const now = Number(expected.timestamp);
    const dueAt = now + Number(expected.delay);
    const ours = newId();
    await addMissingDelayedJobs(redis, queue, [{ id: ours, dueAt }], now);

    expect(await redis.hgetall(queue.toKey(ours))).toEqual(expected);
    expect(await redis.object("ENCODING", queue.toKey(ours))).toBe("listpack");
    // Same due millisecond: BullMQ's sequence puts ours right after its own.
    const bullmqScore = Number(await redis.zscore(queue.toKey("delayed"), viaBullmq));
    expect(bullmqScore).toBe(dueAt * 0x1000);
    expect(Number(await redis.zscore(queue.toKey("delayed"), ours))).toBe(bullmqScore + 1);
    const job = await queue.getJob(ours);
    expect(job?.id).toBe(ours);
    expect(await job?.getState()).toBe("delayed");
  });

  it("adds only missing jobs, and hands back those already due instead of adding them", async () => {
    const now = Date.now();
    const existing = newId();
    const missing = newId();
    const overdue = newId();
    await addMissingDelayedJobs(redis, queue, [{ id: existing, dueAt: now + 60_000 }], now);

    const result = await addMissingDelayedJobs(
      redis,
      queue,
      [
        { id: existing, dueAt: now + 120_000 },
        { id: missing, dueAt: now + 30_000 },
        { id: overdue, dueAt: now - 1 },
      ],
      now,
    );
    expect(result).toEqual({ added: 1, dueNow: [overdue] });
    expect(await redis.exists(queue.toKey(overdue))).toBe(0);
    // The existing job was left as it was, not moved.
    expect((await queue.getJob(existing))?.opts.delay).toBe(60_000);
    expect(await redis.zcard(queue.toKey("delayed"))).toBe(2);
    // The marker a blocked worker waits on says when the earliest delayed job is due.
    expect(Number(await redis.zscore(queue.toKey("marker"), "1"))).toBe(now + 30_000);
  });

  it("wakes a waiting BullMQ worker, which runs the job when it comes due", async () => {
    const consumer = createRedis(TEST_REDIS_URL, "consumer");
    const ran: string[] = [];
    const worker = new Worker(
      REFRESH_QUEUE,
      async (job) => {
        ran.push(job.id ?? "");
      },
      { connection: consumer, prefix },
    );
    try {
      await worker.waitUntilReady();
      const id = newId();
      const completed = new Promise<void>((resolve) => {
        worker.on("completed", (job) => {
          if (job.id === id) resolve();
        });
      });
      const now = Date.now();
      await addMissingDelayedJobs(redis, queue, [{ id, dueAt: now + 300 }], now);
      await completed;
      expect(ran).toEqual([id]);
    } finally {
      await worker.close();
      await consumer.quit();
    }
  });
});
