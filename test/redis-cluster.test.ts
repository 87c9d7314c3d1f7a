import { once } from "node:events";
import { createRedis } from "@evergreen/redis";
import { hashTagSlot, openRefreshToken, QUEUE_PREFIX, refreshJobId } from "@evergreen/refresh";
import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { type AppProcess, listeningPort, startApp } from "./support/app-process";
import { type RedisCluster, startRedisCluster } from "./support/redis-cluster";

// A Redis Cluster of its own on ports 7100-7105 (bus ports 17100-17105): 3 primaries, 3
// replicas, node timeout 2 s so that a replica takes over within seconds.
const SHARDS = 3;
const API_KEY = "cluster-test-key-0123456789";
const CONNECTIONS = 120;

let cluster: RedisCluster;
let h: RefreshHarness;
const apps: AppProcess[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster({ basePort: 7100, nodeTimeoutMs: 2_000 });
  h = await createRefreshHarness({
    redisUrl: "redis://127.0.0.1:7100",
    clusterNodes: cluster.nodes,
    // The production names: the apps below use them, and this cluster is ours alone.
    prefix: QUEUE_PREFIX,
    shards: SHARDS,
    // Refreshes take a while, so some are in flight when a primary dies.
    latencyMs: 50,
  });
}, 60_000);

afterAll(async () => {
  for (const app of apps.splice(0)) {
    app.child.kill("SIGKILL");
    await app.exited;
  }
  await h?.close().catch(() => undefined);
  await cluster?.close();
});

function start(name: "api" | "scheduler" | "worker", on: RedisCluster = cluster): AppProcess {
  const app = startApp(name, {
    NODE_ENV: "test",
    DATABASE_URL: h.db.url,
    REDIS_URL: `redis://127.0.0.1:${on.nodes[0]?.port}`,
    REDIS_CLUSTER_NODES: on.spec,
    REFRESH_QUEUE_SHARDS: String(SHARDS),
    ENCRYPTION_KEYS: h.encryptionKeys,
    API_KEYS: API_KEY,
    PORT: "0",
    METRICS_PORT: "0",
    ALLOW_INSECURE_TOKEN_URLS: "true",
    REFRESH_TIMEOUT_MS: "2000",
    RETRY_BASE_DELAY_MS: "100",
    RECONCILE_INTERVAL_SECONDS: "1",
    WORKER_CONCURRENCY: "12",
    LOG_LEVEL: "info",
  });
  apps.push(app);
  return app;
}

/** The primary serving each shard's hash tag now. */
const shardPrimaries = () =>
  Promise.all(
    h.queues.layout.prefixes.map((prefix) => cluster.primaryOf(hashTagSlot(prefix.slice(1, -1)))),
  );

describe("on a Redis Cluster", () => {
  it("puts the shards' hash tags on every primary", async () => {
    const primaries = await shardPrimaries();
    expect(new Set(primaries).size).toBe(3);
    // Our slot arithmetic is the cluster's: a key written through the cluster client is on
    // the primary we computed, which answers for it without redirecting.
    for (const [shard, prefix] of h.queues.layout.prefixes.entries()) {
      await h.redis.set(`${prefix}:probe`, String(shard));
      expect(await cluster.getOn(primaries[shard] ?? 0, `${prefix}:probe`)).toBe(String(shard));
    }
  });

  it("keeps refreshing through a primary's death: none lost, no rotated token reused", async () => {
    // Which process stalled, and on what: their warnings and errors, and where each
    // connection not yet refreshed stands (its shard, its row's schedule, its job's state).
    onTestFailed(async () => {
      for (const app of apps) {
        for (const line of app.logs.filter(({ level }) => level === "warn" || level === "error")) {
          console.error(JSON.stringify(line));
        }
      }
      const stalled = await h.prisma.connection.findMany({ where: { refreshCount: 0 } });
      for (const row of stalled) {
        const shard = h.queues.layout.shardOf(row.id);
        const queue = h.queues.shards[shard];
        const job = await queue
          ?.getJob(refreshJobId({ connectionId: row.id, version: row.version }))
          .catch(() => undefined);
        const state = job ? await job.getState().catch(() => "unreadable") : "no job";
        const score =
          queue && job?.id
            ? await h.redis.zscore(queue.toKey("delayed"), job.id).catch(() => "unreadable")
            : null;
        console.error(
          JSON.stringify({
            connection: row.id,
            shard,
            nextRefreshAt: row.nextRefreshAt,
            state,
            attemptsStarted: job?.attemptsStarted,
            delayedUntil: score === null ? null : Number(score) / 0x1000,
          }),
        );
      }
      // A marker left unread means no consumer of that shard is waiting on it.
      for (const [shard, queue] of h.queues.shards.entries()) {
        const marker = await h.redis
          .zrange(queue.toKey("marker"), 0, -1, "WITHSCORES")
          .catch((err: Error) => err.message);
        const counts = await queue.getJobCounts().catch((err: Error) => err.message);
        console.error(JSON.stringify({ shard, marker, counts, now: Date.now() }));
      }
    });
    const added = await Promise.all(
      Array.from({ length: CONNECTIONS }, () => h.addConnection({ rotate: true })),
    );
    const api = start("api");
    const scheduler = start("scheduler");
    const [apiPort, schedulerPort, ...workerPorts] = await Promise.all([
      listeningPort(api),
      listeningPort(scheduler),
      listeningPort(start("worker")),
      listeningPort(start("worker")),
    ]);
    // Due over the next 8 s, from now that the processes run; no job queued: the
    // scheduler's sweep queues them in their shards.
    const now = Date.now();
    await Promise.all(
      added.map(({ connection }, index) =>
        h.prisma.connection.update({
          where: { id: connection.id },
          data: { nextRefreshAt: new Date(now + 1_000 + (index * 7_000) / CONNECTIONS) },
        }),
      ),
    );

    // Kill shard 0's primary while refreshes are in flight.
    await expect
      .poll(() => h.provider.requests, { timeout: 30_000, interval: 50 })
      .toBeGreaterThanOrEqual(CONNECTIONS / 5);
    const [victim] = await shardPrimaries();
    if (victim === undefined) throw new Error("no primary for shard 0");
    await cluster.kill(victim);
    const requestsAtKill = h.provider.requests;
    // Most refreshes are still ahead: they run against the promoted replica.
    expect(requestsAtKill).toBeLessThan(CONNECTIONS / 2);
    await cluster.waitForFailover(victim, 30_000);
    expect(new Set(await shardPrimaries()).has(victim)).toBe(false);

    // Every connection refreshed, exactly once, and what we hold is what the provider honours.
    await expect
      .poll(() => h.prisma.connection.count({ where: { refreshCount: { gte: 1 } } }), {
        // Within seconds (BullMQ's blocking wait times out in 5); generous for a loaded box.
        // A shard's jobs once never ran after the failover: its consumers waited on a
        // reconnect ioredis never settled (packages/redis/src/connection.ts).
        timeout: 60_000,
        interval: 250,
      })
      .toBe(CONNECTIONS);
    expect(h.provider.requests).toBeGreaterThan(requestsAtKill);
    expect(h.provider.reuseCount).toBe(0);
    const shardsRefreshed = new Set<number>();
    for (const { connection, grant } of added) {
      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
      const snapshot = h.provider.grant(grant.grantId);
      expect(row.status).toBe("active");
      expect(snapshot?.revoked).toBe(false);
      expect(snapshot?.refreshes).toBe(1);
      expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(
        snapshot?.refreshToken,
      );
      shardsRefreshed.add(h.queues.layout.shardOf(row.id));
    }
    expect(shardsRefreshed.size).toBe(SHARDS);

    // Every shard's consumer in both workers survived the failover (/healthz checks each).
    for (const port of workerPorts) {
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    }
    // The api still reaches Redis (readiness, the token path's lock) after the failover.
    const base = `http://127.0.0.1:${apiPort}`;
    await expect
      .poll(async () => (await fetch(`${base}/readyz`)).status, { timeout: 15_000 })
      .toBe(200);
    // The scheduler's sweep and gauges work across the shards after the failover: every
    // job is waiting in the delayed sets for its next refresh, an hour on, and both workers
    // consume every shard.
    const gauge = (text: string, series: string) =>
      Number(new RegExp(`^${series} (\\S+)$`, "m").exec(text)?.[1]);
    await expect
      .poll(
        async () => {
          const text = await (await fetch(`http://127.0.0.1:${schedulerPort}/metrics`)).text();
          return [
            gauge(text, 'evergreen_queue_jobs\\{state="delayed"\\}'),
            gauge(text, "evergreen_queue_workers"),
          ];
        },
        { timeout: 15_000, interval: 250 },
      )
      .toEqual([CONNECTIONS, 2]);
    const first = added[0]?.connection;
    if (!first) throw new Error("no connection");
    const token = await fetch(`${base}/v1/connections/${first.id}/token`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(token.status).toBe(200);
  }, 150_000);
});

describe("on a Redis Cluster whose every node is gone", () => {
  it("answers 503, rather than holding the request", async () => {
    // A cluster of its own (ports 7110-7115), so that the one above stays up for cleanup.
    const doomed = await startRedisCluster({ basePort: 7110, nodeTimeoutMs: 2_000 });
    try {
      const api = start("api", doomed);
      const base = `http://127.0.0.1:${await listeningPort(api)}`;
      const { connection } = await h.addConnection();
      for (const { port } of doomed.nodes) await doomed.kill(port);
      // A refresh takes the connection's lock first. With no node left, the cluster client
      // used to queue the command itself, with no limit, and the request never ended.
      const refresh = await fetch(`${base}/v1/connections/${connection.id}/refresh`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      expect(refresh.status).toBe(503);
      expect(refresh.headers.get("retry-after")).not.toBeNull();
    } finally {
      await doomed.close();
    }
  }, 90_000);
});

describe("on a Redis Cluster that has lost its quorum", () => {
  it("lets a consumer connection reconnect: its connect() settles", async () => {
    // A cluster of its own (ports 7120-7125). With two primaries of three gone no replica
    // can be elected, and every node left reports cluster_state:fail.
    const failing = await startRedisCluster({ basePort: 7120, nodeTimeoutMs: 2_000 });
    const consumer = createRedis(
      { url: "redis://127.0.0.1:7120", clusterNodes: failing.nodes },
      "consumer",
    );
    try {
      await once(consumer, "ready");
      const doomed = [await failing.primaryOf(0), await failing.primaryOf(16_383)];
      for (const port of doomed) await failing.kill(port);
      await failing.waitForFailing(30_000);
      // What BullMQ does to a consumer's blocking connection whose BZPOPMIN went unanswered
      // (a primary's death): disconnect, then await connect(). ioredis's ready check found
      // the cluster failing, reconnected on its own and never settled that promise, and
      // the consumer waited on it for good.
      consumer.disconnect();
      await once(consumer, "end");
      const outcome = await Promise.race([
        consumer.connect().then(
          () => "connected",
          (error: Error) => `refused: ${error.message}`,
        ),
        once(consumer, "close").then(() => "closed, unsettled"),
      ]);
      expect(outcome).toBe("connected");
    } finally {
      consumer.disconnect();
      await failing.close();
    }
  }, 90_000);
});
