import { randomBytes, randomUUID } from "node:crypto";
import { createRedis } from "@evergreen/redis";
import { describe, expect, it } from "vitest";
import { createRefreshQueue, parseRefreshJobId, refreshJobId } from "./jobs";
import { RefreshQueues } from "./refresh-queues";
import { enqueueRefresh } from "./schedule";
import { RefreshLayout } from "./shards";
import { TEST_REDIS_URL } from "./testing";

describe("refresh job ids", () => {
  it("parse back to the payload they were made from", () => {
    const payload = { connectionId: "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80", version: 12 };
    expect(parseRefreshJobId(refreshJobId(payload))).toEqual(payload);
  });

  it.each([
    "1",
    "repeat:abc",
    "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80",
    "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80.01",
    "7D3F4A52-0C1E-4A7B-9F0E-2B8C5D6E7F80.1",
  ])("refuse %j, which they never make", (id) => expect(parseRefreshJobId(id)).toBeUndefined());
});

/** Redis's default: a hash with a longer value is a hashtable, about twice the memory. */
const LISTPACK_VALUE_LIMIT = 64;

describe("a scheduled refresh job in Redis", () => {
  it("stays a listpack hash: every field fits Redis's default hash-max-listpack-value", async () => {
    const redis = createRedis(TEST_REDIS_URL, "producer");
    const prefix = `{test-${randomBytes(4).toString("hex")}}`;
    const queue = createRefreshQueue(redis, prefix);
    // The longest a job gets: a large version, due a year from now.
    const payload = { connectionId: randomUUID(), version: 2_147_483_647 };
    const dueAt = new Date(Date.now() + 365 * 86_400_000);
    const id = refreshJobId(payload);
    try {
      await enqueueRefresh(queue, payload, dueAt);
      const key = queue.toKey(id);
      const fields = await redis.hgetall(key);
      const tooLong = Object.entries(fields).filter(
        ([, value]) => Buffer.byteLength(value) > LISTPACK_VALUE_LIMIT,
      );
      expect(tooLong).toEqual([]);
      expect(await redis.object("ENCODING", key)).toBe("listpack");
      // BullMQ still reads it whole: the id from its key, the due time from its options.
      const job = await queue.getJob(id);
      expect(job?.id).toBe(id);
      expect(job?.data).toEqual({});
      expect(
        Math.abs((job?.timestamp ?? 0) + (job?.opts.delay ?? 0) - dueAt.getTime()),
      ).toBeLessThan(1_000);
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      await redis.quit();
    }
  });
});

describe("scheduled refresh jobs in a sharded queue", () => {
  it("are compact in every shard, each in its connection's shard", async () => {
    const redis = createRedis(TEST_REDIS_URL, "producer");
    const layout = new RefreshLayout(3, `test-${randomBytes(4).toString("hex")}`);
    const queues = new RefreshQueues(redis, layout);
    const dueAt = new Date(Date.now() + 3_600_000);
    try {
      // Enough connections that every one of the 3 shards gets some.
      const payloads = Array.from({ length: 30 }, () => ({
        connectionId: randomUUID(),
        version: 7,
      }));
      for (const payload of payloads) await enqueueRefresh(queues, payload, dueAt);
      const shardsUsed = new Set<number>();
      for (const payload of payloads) {
        const shard = layout.shardOf(payload.connectionId);
        shardsUsed.add(shard);
        const key = queues.shards[shard]?.toKey(refreshJobId(payload)) ?? "";
        expect(await redis.object("ENCODING", key)).toBe("listpack");
        expect(await redis.hget(key, "data")).toBe("{}");
        expect(JSON.parse((await redis.hget(key, "opts")) ?? "{}")).not.toHaveProperty("jobId");
      }
      expect(shardsUsed.size).toBe(3);
      const counts = await Promise.all(queues.shards.map((queue) => queue.getDelayedCount()));
      expect(counts.reduce((sum, count) => sum + count, 0)).toBe(payloads.length);
    } finally {
      await Promise.all(queues.shards.map((queue) => queue.obliterate({ force: true })));
      await queues.close();
      await redis.quit();
    }
  });
});
