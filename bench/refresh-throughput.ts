// Refreshes per second sustained by ONE worker process (SPEC §7: at least 1,000/s).
// Conditions: PostgreSQL, Redis and the mock provider on this machine; the provider
// answers after BENCH_LATENCY_MS (50); every job is due at once, so the queue never runs
// dry. Measured from the provider's first request until every new token is stored.
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { enqueueRefresh, QUEUE_PREFIX } from "@evergreen/refresh";
import { createRefreshHarness, redisDatabaseUrl } from "@evergreen/refresh/testing";
import { startApp } from "../test/support/app-process";

const connections = Number(process.env.BENCH_CONNECTIONS ?? 20_000);
const latencyMs = Number(process.env.BENCH_LATENCY_MS ?? 50);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 200);
const redisUrl = redisDatabaseUrl(8);

export async function benchRefreshThroughput(): Promise<Record<string, number>> {
  const h = await createRefreshHarness({ redisUrl, prefix: QUEUE_PREFIX, latencyMs });
  await h.redis.flushdb();
  try {
    const ids: string[] = [];
    for (let start = 0; start < connections; start += 200) {
      const batch = Math.min(200, connections - start);
      const added = await Promise.all(
        Array.from({ length: batch }, () => h.addConnection({ rotate: true })),
      );
      ids.push(...added.map(({ connection }) => connection.id));
    }
    const now = new Date();
    for (let start = 0; start < ids.length; start += 1_000) {
      await Promise.all(
        ids
          .slice(start, start + 1_000)
          .map((connectionId) => enqueueRefresh(h.queue, { connectionId, version: 0 }, now, now)),
      );
    }

    const worker = startApp("worker", {
      NODE_ENV: "production",
      DATABASE_URL: h.db.url,
      REDIS_URL: redisUrl,
      ENCRYPTION_KEYS: h.encryptionKeys,
      METRICS_PORT: "0",
      ALLOW_INSECURE_TOKEN_URLS: "true",
      WORKER_CONCURRENCY: String(concurrency),
      LOG_LEVEL: "warn",
    });
    const started = performance.now();
    let firstAt = 0;
    let refreshed = 0;
    while (refreshed < connections) {
      if (!firstAt && h.provider.requests > 0) firstAt = performance.now();
      if (performance.now() - started > 600_000)
        throw new Error("benchmark did not finish in 10 min");
      await delay(100);
      refreshed = await h.prisma.connection.count({ where: { refreshCount: 1 } });
    }
    const seconds = (performance.now() - firstAt) / 1000;
    worker.child.kill("SIGTERM");
    await worker.exited;
    return {
      connections,
      refreshed,
      providerLatencyMs: latencyMs,
      workerConcurrency: concurrency,
      seconds: Number(seconds.toFixed(2)),
      refreshesPerSecond: Math.round(connections / seconds),
      rotatedTokenReuse: h.provider.reuseCount,
    };
  } finally {
    await h.close();
  }
}
