import { randomBytes, randomUUID } from "node:crypto";
import { createRedis } from "@evergreen/redis";
import { Worker } from "bullmq";
import { describe, expect, it } from "vitest";
import { REFRESH_JOB, refreshJobId } from "./jobs";
import { RefreshQueues } from "./refresh-queues";
import { enqueueRefresh, refreshJob } from "./schedule";
import { RefreshLayout } from "./shards";
import { TEST_REDIS_URL } from "./testing";

function setup(shards = 1) {
  const redis = createRedis(TEST_REDIS_URL, "producer");
  const layout = new RefreshLayout(shards, `test-queues-${randomBytes(4).toString("hex")}`);
  const queues = new RefreshQueues(redis, layout);
  return {
    redis,
    queues,
    async close() {
      await Promise.all(queues.shards.map((queue) => queue.obliterate({ force: true })));
      await queues.close();
      await redis.quit();
    },
  };
}

const payload = () => ({ connectionId: randomUUID(), version: 1 });

describe("RefreshQueues.add of delayed jobs, batched per event-loop turn", () => {
  it("writes the same hash, score and marker as BullMQ's add (one shard)", async () => {
    const t = setup();
    try {
      const a = payload();
      const b = payload();
      const at = new Date(Date.now() + 3_600_000);
      const queue = t.queues.of(a.connectionId);
      const shardOfB = t.queues.of(b.connectionId);
      expect(shardOfB).toBe(queue);
      // a through BullMQ's own add on the shard queue, b through RefreshQueues (the batch).
      await enqueueRefresh(queue, a, at);
      await enqueueRefresh(t.queues, b, at);
      const ha = await t.redis.hgetall(queue.toKey(refreshJobId(a)));
      const hb = await t.redis.hgetall(queue.toKey(refreshJobId(b)));
      const strip = ({ timestamp: _t, delay: _d, opts: _o, ...rest }: Record<string, string>) =>
        rest;
      expect(strip(hb)).toEqual(strip(ha));
      expect(Object.keys(JSON.parse(hb.opts ?? "{}")).sort()).toEqual(
        Object.keys(JSON.parse(ha.opts ?? "{}")).sort(),
      );
      const dueA = Number(ha.timestamp) + Number(ha.delay);
      const dueB = Number(hb.timestamp) + Number(hb.delay);
      expect(Math.abs(dueA - dueB)).toBeLessThan(50);
      const sa = Number(await t.redis.zscore(queue.toKey("delayed"), refreshJobId(a)));
      const sb = Number(await t.redis.zscore(queue.toKey("delayed"), refreshJobId(b)));
      expect(Math.floor(sa / 0x1000)).toBe(dueA);
      expect(Math.floor(sb / 0x1000)).toBe(dueB);
      const marker = await t.redis.zrange(queue.toKey("marker"), 0, -1, "WITHSCORES");
      expect(Number(marker[1])).toBe(Math.min(sa, sb) / 0x1000);
    } finally {
      await t.close();
    }
  });

  it("leaves an ACTIVE job with the same id exactly as it is", async () => {
    const t = setup();
    const p = payload();
    const id = refreshJobId(p);
    const queue = t.queues.of(p.connectionId);
    const consumer = createRedis(TEST_REDIS_URL, "consumer");
    const worker = new Worker(queue.name, null, {
      connection: consumer,
      prefix: queue.opts.prefix,
      autorun: false,
    });
    try {
      await queue.add(REFRESH_JOB, {}, { jobId: id });
      const token = "test-token";
      const active = await worker.getNextJob(token);
      expect(active?.id).toBe(id);
      const before = await t.redis.hgetall(queue.toKey(id));
      await enqueueRefresh(t.queues, p, new Date(Date.now() + 60_000));
      expect(await (await queue.getJob(id))?.getState()).toBe("active");
      expect(await t.redis.hgetall(queue.toKey(id))).toEqual(before);
      expect(await t.redis.zscore(queue.toKey("delayed"), id)).toBeNull();
    } finally {
      await worker.close(true);
      await consumer.quit();
      await t.close();
    }
  });

  it("puts an entry due by the time the batch runs where BullMQ would (paused queue)", async () => {
    const t = setup();
    const p = payload();
    const id = refreshJobId(p);
    const queue = t.queues.of(p.connectionId);
    try {
      await queue.pause();
      const pending = enqueueRefresh(t.queues, p, new Date(Date.now() + 2));
      const until = Date.now() + 10;
      while (Date.now() < until) {
        // Blocks the event loop: the job is due before the batch's setImmediate runs.
      }
      await pending;
      const state = await (await queue.getJob(id))?.getState();
      expect(["paused", "waiting"]).toContain(state);
      expect(await queue.getJobCounts("wait", "delayed")).toMatchObject({
        delayed: 0,
      });
    } finally {
      await t.close();
    }
  });

  it("fails only the caller of a bad entry; the others are added", async () => {
    const t = setup(2);
    try {
      const good = Array.from({ length: 10 }, payload);
      const at = new Date(Date.now() + 3_600_000);
      const bad = refreshJob(payload(), at);
      const results = await Promise.allSettled([
        ...good.map((p) => enqueueRefresh(t.queues, p, at)),
        t.queues.add(bad.name, bad.data, { ...bad.opts, jobId: "not-a-refresh-id" }),
      ]);
      expect(results.slice(0, 10).every((r) => r.status === "fulfilled")).toBe(true);
      expect(results[10]?.status).toBe("rejected");
      for (const p of good) {
        expect(await (await t.queues.getJob(refreshJobId(p)))?.getState()).toBe("delayed");
      }
    } finally {
      await t.close();
    }
  });

  it("adds a job with a name, data or options of its own through BullMQ, as given", async () => {
    const t = setup();
    try {
      const p = payload();
      const id = refreshJobId(p);
      await t.queues.add("something-else", {} as never, {
        jobId: id,
        delay: 60_000,
        priority: 5,
        attempts: 3,
      });
      const job = await t.queues.getJob(id);
      expect(job?.name).toBe("something-else");
      expect(job?.opts).toMatchObject({ priority: 5, attempts: 3 });
      expect(await job?.getState()).toBe("delayed");
    } finally {
      await t.close();
    }
  });

  it("gives every caller an error while Redis is down, and leaves none waiting", async () => {
    const dead = createRedis("redis://127.0.0.1:1", "producer");
    dead.on("error", () => {});
    const queues = new RefreshQueues(dead, new RefreshLayout(1, "test-queues-dead"));
    queues.on("error", () => {});
    try {
      const at = new Date(Date.now() + 3_600_000);
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, () => enqueueRefresh(queues, payload(), at)),
      );
      expect(results.every((r) => r.status === "rejected")).toBe(true);
    } finally {
      await queues.close().catch(() => {});
      dead.disconnect();
    }
  }, 30_000);
});
