import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import { createLogger } from "@evergreen/observability";
import { createRedis } from "@evergreen/redis";
import {
  enqueueRefresh,
  REFRESH_JOB,
  REFRESH_QUEUE,
  reconcileQueue,
  refreshJobId,
  sealRefreshToken,
} from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  TEST_REDIS_URL,
} from "@evergreen/refresh/testing";
import { Queue, QueueEvents, type Worker } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { INFRA_RETRY_MAX_MS, infraRetryDelayMs, startRefreshWorker } from "./refresh-worker";

let h: RefreshHarness;
let consumer: Redis;
let worker: Worker | undefined;
beforeEach(async () => {
  h = await createRefreshHarness();
  consumer = createRedis(TEST_REDIS_URL, "consumer");
});
afterEach(async () => {
  await worker?.close();
  worker = undefined;
  await consumer.quit();
  await h.close();
});

function startWorker(log = h.deps.log): Worker {
  worker = startRefreshWorker(h.deps, {
    connection: consumer,
    concurrency: 5,
    lockDurationMs: 30_000,
    prefix: h.prefix,
    log,
  });
  return worker;
}

/** The return value of the job once the worker completes it. */
function completion(of: Worker, jobId: string): Promise<unknown> {
  return new Promise((resolve) => {
    of.on("completed", (job, result) => {
      if (job.id === jobId) resolve(result);
    });
  });
}

/** Resolves `redelayed(jobId)` when the worker puts that job back in the delayed set. */
async function watchDelays() {
  // From the start of the stream: a re-delay before the listener's first read still counts.
  const eventsRedis = createRedis(TEST_REDIS_URL, "consumer");
  const events = new QueueEvents(REFRESH_QUEUE, {
    connection: eventsRedis,
    prefix: h.prefix,
    lastEventId: "0-0",
  });
  return {
    redelayed: (jobId: string) =>
      new Promise<void>((resolve) => {
        events.on("delayed", (event) => {
          if (event.jobId === jobId) resolve();
        });
      }),
    async close() {
      await events.close();
      await eventsRedis.quit();
    },
  };
}

/** A connection due at `at`, with its job in the queue. */
async function scheduledConnection(at: Date) {
  const { connection, grant } = await h.addConnection();
  const row = await h.prisma.connection.update({
    where: { id: connection.id },
    data: { nextRefreshAt: at },
  });
  const payload = { connectionId: row.id, version: row.version };
  await enqueueRefresh(h.queues, payload, at);
  return { row, grant, jobId: refreshJobId(payload) };
}

describe("startRefreshWorker", () => {
  it("never refreshes a connection deleted while its job was delayed", async () => {
    const { row, grant, jobId } = await scheduledConnection(new Date(Date.now() + 3_600_000));
    const job = await h.queue.getJob(jobId);
    expect(await job?.getState()).toBe("delayed");
    // Deleted behind the api's back, so the job stays queued; then its time comes.
    await h.prisma.connection.delete({ where: { id: row.id } });
    const done = completion(startWorker(), jobId);
    await job?.promote();

    expect(await done).toBe("skipped:deleted");
    expect(h.provider.refreshesByGrant.get(grant.grantId) ?? 0).toBe(0);
    expect(h.provider.requests).toBe(0);
  });

  it("measures lateness from the row's nextRefreshAt, so a job rebuilt after Redis lost it reads late", async () => {
    // Due two minutes ago; its job was lost with Redis and rebuilt just now, due at once.
    const dueAt = new Date(Date.now() - 120_000);
    const { connection: row } = await h.addConnection();
    await h.prisma.connection.update({ where: { id: row.id }, data: { nextRefreshAt: dueAt } });
    const payload = { connectionId: row.id, version: row.version };
    await enqueueRefresh(h.queues, payload, new Date());
    expect(await completion(startWorker(), refreshJobId(payload))).toBe("success");

    const { values } = await h.metrics.refreshLateness.get();
    const count = values.find((v) => v.metricName?.endsWith("_count"))?.value;
    const sum = values.find((v) => v.metricName?.endsWith("_sum"))?.value ?? 0;
    expect(count).toBe(1);
    expect(sum).toBeGreaterThanOrEqual(120);
  });

  it.each([
    ["an expires_at in the past", { expires_at: 1 }],
    ["an expires_in of a millisecond", { expires_in: 0.001 }],
    ["a two-second expires_in", { expires_in: 2 }],
  ])(
    "refreshes once per minimum interval, not in a loop, when the provider states %s",
    async (_, expiry) => {
      const { connection, grant } = await h.addConnection();
      const answer = {
        status: 200,
        body: { access_token: "at-short", token_type: "Bearer", ...expiry },
      };
      h.provider.failNext(100, answer, { grantId: grant.grantId });
      const first = { connectionId: connection.id, version: 0 };
      await enqueueRefresh(h.queues, first, new Date());
      const running = startWorker();
      expect(await completion(running, refreshJobId(first))).toBe("success");
      await running.close();

      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
      const refreshedAt = row.lastRefreshedAt?.getTime() ?? 0;
      // Only a stated lifetime of at least a second is believed; otherwise the fallback (1 h).
      const lifetimeSeconds = ((row.expiresAt?.getTime() ?? 0) - refreshedAt) / 1000;
      const believed = "expires_in" in expiry && expiry.expires_in >= 1;
      expect(lifetimeSeconds).toBeCloseTo(believed ? 2 : 3600, 0);
      expect((row.nextRefreshAt?.getTime() ?? 0) - refreshedAt).toBeGreaterThanOrEqual(30_000);
      const next = await h.queue.getJob(refreshJobId({ connectionId: connection.id, version: 1 }));
      expect(await next?.getState()).toBe("delayed");
      expect(next?.opts.delay).toBeGreaterThan(25_000);
      expect(h.provider.requests).toBe(1);
    },
  );

  it("does nothing for a needs_reauth connection's job", async () => {
    const { row, grant, jobId } = await scheduledConnection(new Date());
    await h.prisma.connection.update({
      where: { id: row.id },
      data: { status: "needs_reauth", nextRefreshAt: null },
    });

    const done = completion(startWorker(), jobId);
    expect(await done).toBe("skipped:needs_reauth");
    expect(h.provider.refreshesByGrant.get(grant.grantId) ?? 0).toBe(0);
    expect(await h.prisma.connection.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      status: "needs_reauth",
      version: row.version,
    });
  });

  // Jobs added before their data was emptied (docs/adr/0018) are still in Redis after an
  // upgrade, and producers of the previous release add them during a rolling deploy.
  it("refreshes a job in the previous release's shape, with `{connectionId, version}` data", async () => {
    const { connection: row, grant } = await h.addConnection();
    const legacy = new Queue(REFRESH_QUEUE, { connection: h.redis, prefix: h.prefix });
    const payload = { connectionId: row.id, version: row.version };
    const jobId = refreshJobId(payload);
    try {
      await legacy.add(REFRESH_JOB, payload, { jobId });
      expect((await legacy.getJob(jobId))?.data).toEqual(payload);
      expect(await completion(startWorker(), jobId)).toBe("success");
    } finally {
      await legacy.close();
    }
    expect(h.provider.refreshesByGrant.get(grant.grantId)).toBe(1);
  });

  it("fails a job whose id does not name a connection version, without retrying it", async () => {
    const { connection: row } = await h.addConnection();
    const failed = new Promise<string>((resolve) => {
      startWorker().on("failed", (job, err) => {
        if (job?.id === row.id) resolve(err.message);
      });
    });
    await h.queue.add(REFRESH_JOB, {}, { jobId: row.id });
    expect(await failed).toBe("malformed refresh job id");
    expect(h.provider.requests).toBe(0);
  });

  it("keeps jobs re-delayed for a 429 where it put them, through a scheduler sweep", async () => {
    const { redelayed, close } = await watchDelays();
    try {
      h.provider.enqueue({ status: 429, retryAfter: "60", error: "slow_down" });
      const limited = await scheduledConnection(new Date());
      const limitedDelayed = redelayed(limited.jobId);
      startWorker();
      await limitedDelayed;
      // Another connection of the integration meets the cooldown without asking the provider.
      const held = await scheduledConnection(new Date());
      await redelayed(held.jobId);
      expect(h.provider.requests).toBe(1);

      const delayedKey = h.queue.toKey("delayed");
      const scores = () =>
        Promise.all([limited, held].map(({ jobId }) => h.redis.zscore(delayedKey, jobId)));
      const before = await scores();
      expect(before.every((score) => score !== null)).toBe(true);

      // The rows still say "due now"; the jobs wait for the cooldown, and the sweep agrees.
      const result = await reconcileQueue(h.prisma, h.queues, h.redis);
      expect(result).toMatchObject({ scanned: 2, enqueued: 0, retimed: 0, removed: 0 });
      expect(await scores()).toEqual(before);
      expect(h.provider.requests).toBe(1);
    } finally {
      await close();
    }
  });

  it("puts a job that failed on an exception back in the delayed set, and removes completed ones", async () => {
    const done = await scheduledConnection(new Date());
    // A refresh token sealed with a key this worker's ring lacks: decryption throws.
    const broken = await scheduledConnection(new Date());
    const otherRing = KeyRing.fromSpec(generateEncryptionKey("other"));
    await h.prisma.connection.update({
      where: { id: broken.row.id },
      data: { refreshToken: sealRefreshToken(otherRing, broken.row.id, "rt") },
    });
    const { redelayed, close } = await watchDelays();
    try {
      const delayed = redelayed(broken.jobId);
      const running = startWorker();
      const completed = completion(running, done.jobId);
      await Promise.all([delayed, completed]);
      const job = await h.queue.getJob(broken.jobId);
      expect(await job?.getState()).toBe("delayed");
      expect(job?.attemptsStarted).toBe(1);
      expect(
        await h.prisma.connection.findUniqueOrThrow({ where: { id: broken.row.id } }),
      ).toMatchObject({
        version: broken.row.version,
        status: "active",
        refreshCount: 0,
      });
      // Completed jobs leave nothing behind in Redis.
      expect(await h.queue.getJob(done.jobId)).toBeUndefined();
      expect(await h.queue.getJobCounts("completed", "failed")).toEqual({
        completed: 0,
        failed: 0,
      });
    } finally {
      await close();
    }
  });

  // While PostgreSQL is down every job due fails the same way: a line per job (thousands a
  // second at scale) buried everything else in the log.
  it("logs jobs failing the same way once per window, counting the rest", async () => {
    const otherRing = KeyRing.fromSpec(generateEncryptionKey("other"));
    const broken = await Promise.all(
      Array.from({ length: 3 }, () => scheduledConnection(new Date())),
    );
    for (const { row } of broken) {
      await h.prisma.connection.update({
        where: { id: row.id },
        data: { refreshToken: sealRefreshToken(otherRing, row.id, "rt") },
      });
    }
    const lines: Record<string, unknown>[] = [];
    const log = createLogger(
      { name: "worker" },
      { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const { redelayed, close } = await watchDelays();
    try {
      const delayed = Promise.all(broken.map(({ jobId }) => redelayed(jobId)));
      startWorker(log);
      await delayed;
      const failures = lines.filter((line) => line.msg === "refresh failed; retrying");
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ level: "error", suppressed: 0 });
    } finally {
      await close();
    }
  });
});

describe("infraRetryDelayMs", () => {
  it("backs off like a provider failure at first, but never past 15 s, so an outage's end is met at once", () => {
    const settings = { retryBaseDelayMs: 1_000, retryMaxDelayMs: 300_000 };
    expect(infraRetryDelayMs(settings, 1)).toBeLessThanOrEqual(1_000);
    for (let attempts = 1; attempts <= 40; attempts++) {
      expect(infraRetryDelayMs(settings, attempts)).toBeLessThanOrEqual(INFRA_RETRY_MAX_MS);
    }
    expect(
      Math.max(...Array.from({ length: 50 }, () => infraRetryDelayMs(settings, 20))),
    ).toBeGreaterThan(7_000);
  });
});
