import { Cooldown, createRedis, RedisLock } from "@evergreen/redis";
import { Worker } from "bullmq";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseRefreshJobId, REFRESH_QUEUE, refreshJobId, WORKER_JOB_RETENTION } from "./jobs";
import { ParkedAnswers } from "./parked-answers";
import { reconcileQueue } from "./reconcile";
import { type RefreshDeps, refreshConnection } from "./refresh-connection";
import { RefreshQueues } from "./refresh-queues";
import { enqueueRefresh } from "./schedule";
import {
  createRefreshHarness,
  type RefreshHarness,
  successfulRefresh,
  TEST_REDIS_URL,
} from "./testing";

let h: RefreshHarness;
beforeEach(async () => {
  h = await createRefreshHarness();
});
afterEach(() => h.close());

/** Connections due at staggered times, as refreshes would have left them. */
async function dueConnections(count: number) {
  const base = Date.now() + 60_000;
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const { connection } = await h.addConnection();
      return h.prisma.connection.update({
        where: { id: connection.id },
        data: { nextRefreshAt: new Date(base + index * 1000), version: index % 3 },
      });
    }),
  );
}

async function queuedJobIds(): Promise<string[]> {
  const jobs = await h.queue.getJobs(["delayed", "wait"]);
  return jobs.map((job) => job.id ?? "").sort();
}

const jobIdOf = (row: { id: string; version: number }) =>
  refreshJobId({ connectionId: row.id, version: row.version });

describe("reconcileQueue", () => {
  it("rebuilds every pending job after Redis lost them, timed to nextRefreshAt", async () => {
    const rows = await dueConnections(25);
    const { connection: stopped } = await h.addConnection();
    await h.prisma.connection.update({
      where: { id: stopped.id },
      data: { status: "needs_reauth", nextRefreshAt: new Date() },
    });
    await h.queue.obliterate({ force: true }); // what FLUSHALL does to our keys

    const now = new Date();
    const result = await reconcileQueue(h.prisma, h.queues, h.redis, {
      batchSize: 7,
      now: () => now,
    });
    expect(result).toEqual({
      scanned: 25,
      enqueued: 25,
      retimed: 0,
      removed: 0,
      unrecognized: 0,
      moved: 0,
      parkedMoved: 0,
    });
    expect(await queuedJobIds()).toEqual(rows.map(jobIdOf).sort());
    const sample = rows[3];
    if (!sample) throw new Error("no rows");
    const job = await h.queue.getJob(jobIdOf(sample));
    expect(job?.opts.delay).toBe((sample.nextRefreshAt?.getTime() ?? 0) - now.getTime());
  });

  it("rebuilds the jobs of rows already due into the wait list, and adds nothing twice", async () => {
    const rows = await dueConnections(5);
    const overdue = await Promise.all(
      rows.slice(0, 2).map((row) =>
        h.prisma.connection.update({
          where: { id: row.id },
          data: { nextRefreshAt: new Date(Date.now() - 60_000) },
        }),
      ),
    );
    await h.queue.obliterate({ force: true });

    const first = await reconcileQueue(h.prisma, h.queues, h.redis, { batchSize: 2 });
    expect(first).toMatchObject({ scanned: 5, enqueued: 5 });
    const waiting = (await h.queue.getJobs(["wait"])).map((job) => job.id).sort();
    expect(waiting).toEqual(overdue.map(jobIdOf).sort());
    expect(await h.queue.getDelayedCount()).toBe(3);
    expect(await reconcileQueue(h.prisma, h.queues, h.redis, { batchSize: 2 })).toMatchObject({
      scanned: 5,
      enqueued: 0,
    });
  });

  it("leaves exactly one job per connection when two schedulers sweep at once", async () => {
    const rows = await dueConnections(300);
    // Half the connections also have the job of their previous version still queued.
    await Promise.all(
      rows
        .filter((row) => row.version > 0)
        .map((row) =>
          enqueueRefresh(
            h.queues,
            { connectionId: row.id, version: row.version - 1 },
            new Date(Date.now() + 30_000),
          ),
        ),
    );
    // The second scheduler has a connection and a Queue of its own, as a replica would.
    const otherRedis = createRedis(TEST_REDIS_URL, "producer");
    const otherQueue = new RefreshQueues(otherRedis, h.queues.layout);
    try {
      const [first, second] = await Promise.all([
        reconcileQueue(h.prisma, h.queues, h.redis, { batchSize: 64 }),
        reconcileQueue(h.prisma, otherQueue, otherRedis, { batchSize: 50 }),
      ]);
      expect(first?.scanned).toBe(300);
      expect(second?.scanned).toBe(300);
    } finally {
      await otherQueue.close();
      await otherRedis.quit();
    }

    const ids = await queuedJobIds();
    expect(ids).toEqual(rows.map(jobIdOf).sort());
    const perConnection = new Set(ids.map((id) => id.split(".")[0]));
    expect(perConnection.size).toBe(300);
    expect(await reconcileQueue(h.prisma, h.queues, h.redis)).toEqual({
      scanned: 300,
      enqueued: 0,
      retimed: 0,
      removed: 0,
      unrecognized: 0,
      moved: 0,
      parkedMoved: 0,
    });
  });

  it("moves a mistimed delayed job to nextRefreshAt and leaves on-time and waiting jobs", async () => {
    const now = new Date();
    const inAnHour = new Date(now.getTime() + 3_600_000);
    const rowAt = async (nextRefreshAt: Date) => {
      const { connection } = await h.addConnection();
      return h.prisma.connection.update({ where: { id: connection.id }, data: { nextRefreshAt } });
    };
    const late = await rowAt(inAnHour);
    const early = await rowAt(inAnHour);
    const onTime = await rowAt(inAnHour);
    const overdue = await rowAt(new Date(now.getTime() - 60_000));
    const schedule = (row: { id: string }, at: Date) =>
      enqueueRefresh(h.queues, { connectionId: row.id, version: 0 }, at, now);
    await schedule(late, new Date(now.getTime() + 7_200_000));
    await schedule(early, new Date(now.getTime() + 600_000));
    await schedule(onTime, inAnHour);
    await schedule(overdue, now); // due: in the wait list, not the delayed set

    const result = await reconcileQueue(h.prisma, h.queues, h.redis, { now: () => now });
    expect(result).toMatchObject({ scanned: 4, enqueued: 0, retimed: 2, removed: 0 });
    for (const row of [late, early]) {
      const job = await h.queue.getJob(jobIdOf(row));
      expect(await job?.getState()).toBe("delayed");
      expect(Number(job?.delay)).toBe(inAnHour.getTime() - now.getTime());
    }
    expect(await h.queue.getJobState(jobIdOf(overdue))).toBe("waiting");
    expect(await queuedJobIds()).toEqual([late, early, onTime, overdue].map(jobIdOf).sort());
  });

  it("removes the jobs no row wants and keeps current, running and foreign ones", async () => {
    const later = new Date(Date.now() + 3_600_000);
    const add = async (data: {
      status?: "needs_reauth" | "error";
      version?: number;
      nextRefreshAt?: Date | null;
    }) => {
      const { connection } = await h.addConnection();
      return h.prisma.connection.update({
        where: { id: connection.id },
        data: { nextRefreshAt: later, ...data },
      });
    };
    const schedule = (row: { id: string }, version: number, at = later) =>
      enqueueRefresh(h.queues, { connectionId: row.id, version }, at);

    // A worker holds the job of a connection deleted meanwhile: it must stay.
    const running = await add({});
    await schedule(running, 0, new Date());
    const consumer = createRedis(TEST_REDIS_URL, "consumer");
    const worker = new Worker(REFRESH_QUEUE, null, {
      connection: consumer,
      prefix: h.prefix,
      autorun: false,
    });
    try {
      expect((await worker.getNextJob("held-by-test"))?.id).toBe(jobIdOf(running));

      const deleted = await add({});
      const needsReauth = await add({ status: "needs_reauth", nextRefreshAt: null });
      const failed = await add({ status: "error", nextRefreshAt: null });
      const stale = await add({ version: 2 });
      const current = await add({});
      await schedule(deleted, 0);
      await schedule(needsReauth, 0, new Date()); // in the wait list
      await schedule(failed, 0);
      await schedule(stale, 1);
      await schedule(stale, 2);
      await schedule(current, 0);
      await h.queue.add("not-ours", {}, { jobId: "not-ours", delay: 60_000 });
      await h.prisma.connection.deleteMany({ where: { id: { in: [deleted.id, running.id] } } });

      const result = await reconcileQueue(h.prisma, h.queues, h.redis, { batchSize: 2 });
      expect(result).toEqual({
        scanned: 2,
        enqueued: 0,
        retimed: 0,
        removed: 4,
        unrecognized: 1,
        moved: 0,
        parkedMoved: 0,
      });
      expect(await queuedJobIds()).toEqual(["not-ours", jobIdOf(stale), jobIdOf(current)].sort());
      expect(await h.queue.getJobState(jobIdOf(running))).toBe("active");
    } finally {
      await worker.close(true);
      await consumer.quit();
    }
  });
});

describe("reconcileQueue after REFRESH_QUEUE_SHARDS changed", () => {
  it("moves pending jobs and parked answers from 1 shard to 3; each connection refreshes once", async () => {
    const due = new Date(Date.now() + 1_500);
    const added = await Promise.all(
      Array.from({ length: 30 }, () => h.addConnection({ rotate: true })),
    );
    for (const { connection } of added) {
      await h.prisma.connection.update({
        where: { id: connection.id },
        data: { nextRefreshAt: due },
      });
      await enqueueRefresh(h.queues, { connectionId: connection.id, version: 0 }, due);
    }
    // One answer parked under the old layout (PostgreSQL refused it): it must follow.
    const parkedRow = added[0]?.connection;
    if (!parkedRow) throw new Error("no connection");
    const { change, event } = successfulRefresh(parkedRow);
    await h.deps.parked.park({ id: parkedRow.id, version: 0 }, change, event);

    const layout = h.queues.layout.withCount(3);
    const queues = new RefreshQueues(h.redis, layout);
    const parked = new ParkedAnswers(h.redis, layout.keys("parked"));
    const deps: RefreshDeps = {
      ...h.deps,
      queue: queues,
      lock: new RedisLock(h.redis, { prefix: layout.keys("lock"), ttlMs: 30_000 }),
      cooldown: new Cooldown(h.redis, layout.keys("cooldown")),
      parked,
    };
    const consumer = createRedis(TEST_REDIS_URL, "consumer");
    const runs: string[] = [];
    const workers = layout.prefixes.map(
      (prefix) =>
        new Worker(
          REFRESH_QUEUE,
          async (job) => {
            // The id carries the payload; the data is empty (docs/adr/0018).
            const payload = parseRefreshJobId(job.id ?? "");
            if (!payload) throw new Error(`not a refresh job id: ${job.id}`);
            const run = await refreshConnection(deps, {
              connectionId: payload.connectionId,
              expectedVersion: payload.version,
              source: "worker",
            });
            runs.push(`${payload.connectionId}:${run.kind}`);
          },
          { connection: consumer, prefix, ...WORKER_JOB_RETENTION },
        ),
    );
    try {
      const result = await reconcileQueue(h.prisma, queues, h.redis);
      expect(result).toMatchObject({ scanned: 30, enqueued: 30, moved: 30, removed: 0 });
      expect(result.parkedMoved).toBe(1);
      // Nothing left in the old queue; the registry forgot it once empty.
      expect(await h.queue.count()).toBe(0);
      expect(await h.redis.smembers(layout.registryKey)).toEqual(["3"]);
      expect(await parked.take(parkedRow.id)).not.toBeNull();
      expect(await new ParkedAnswers(h.redis, h.queues.layout.keys("parked")).count()).toBe(0);
      // Every shard got some of the 30.
      const perShard = await Promise.all(queues.shards.map((queue) => queue.count()));
      expect(perShard.every((count) => count > 0)).toBe(true);

      await expect
        .poll(() => runs.length, { timeout: 20_000, interval: 100 })
        .toBeGreaterThanOrEqual(30);
      expect(h.provider.reuseCount).toBe(0);
      for (const { connection, grant } of added) {
        const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
        expect(row.version).toBe(1);
        const snapshot = h.provider.grant(grant.grantId);
        // The parked answer was stored instead of calling the provider again.
        expect(snapshot?.refreshes).toBe(connection.id === parkedRow.id ? 0 : 1);
        expect(snapshot?.revoked).toBe(false);
      }
      // Sweeps after the move look at the old layout's queue again (a process still running
      // with it may add jobs there) without leaving keys behind: none of it stays in Redis.
      await reconcileQueue(h.prisma, queues, h.redis);
      const [oldPrefix] = h.queues.layout.prefixes;
      expect(await h.redis.keys(`${oldPrefix}:${REFRESH_QUEUE}:*`)).toEqual([]);
    } finally {
      await Promise.all(workers.map((worker) => worker.close()));
      await Promise.all(queues.shards.map((queue) => queue.obliterate({ force: true })));
      await queues.close();
      await consumer.quit();
    }
  });
});
