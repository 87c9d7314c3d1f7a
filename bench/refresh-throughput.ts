// Refreshes per second sustained by ONE worker process (SPEC §7: at least 1,000/s).
// Conditions: PostgreSQL, Redis and the mock provider on this machine; the provider
// answers after BENCH_LATENCY_MS (50); every job is due at once, so the queue never runs
// dry. Measured from the provider's first request until every new token is stored.
import { performance } from "node:perf_hooks";
import { QUEUE_PREFIX } from "@evergreen/refresh";
import { createRefreshHarness, redisDatabaseUrl } from "@evergreen/refresh/testing";
import { processCpuSeconds } from "./process-cpu";
import {
  addRotatingConnections,
  BENCH_REDIS_DB,
  type BenchResult,
  CORES,
  envInt,
  makeDueNow,
  startBenchWorker,
  verdict,
  waitForStored,
} from "./support";

export async function benchRefreshThroughput(): Promise<BenchResult> {
  const connections = envInt("BENCH_CONNECTIONS", 20_000);
  const latencyMs = envInt("BENCH_LATENCY_MS", 50);
  const concurrency = envInt("BENCH_CONCURRENCY", 200);
  const redisUrl = redisDatabaseUrl(BENCH_REDIS_DB.worker);
  const h = await createRefreshHarness({ redisUrl, prefix: QUEUE_PREFIX, latencyMs });
  await h.redis.flushdb();
  try {
    await makeDueNow(h, await addRotatingConnections(h, connections));

    // Watched on its own timer from before the worker starts: the worker consumes before
    // its ops server answers, so the first request may come while we wait for readiness.
    // CPU per refresh is read from the first tenth on (start-up, the loader's compiling, is
    // over) to the last.
    let firstAt = 0;
    let steady: Promise<{ answered: number; cpuSeconds: number }> | undefined;
    let workerPid = 0;
    const watch = setInterval(() => {
      const answered = h.provider.requests;
      if (!firstAt && answered > 0) firstAt = performance.now();
      if (!steady && workerPid && answered >= connections / 10) {
        steady = processCpuSeconds(workerPid).then((cpuSeconds) => ({ answered, cpuSeconds }));
      }
    }, 5).unref();
    const worker = await startBenchWorker({
      databaseUrl: h.db.url,
      redisUrl,
      encryptionKeys: h.encryptionKeys,
      concurrency,
    });
    workerPid = worker.app.child.pid ?? 0;
    const refreshed = await waitForStored(
      {
        answered: () => h.provider.requests,
        stored: () => h.prisma.connection.count({ where: { refreshCount: 1 } }),
      },
      connections,
    );
    const seconds = (performance.now() - firstAt) / 1000;
    clearInterval(watch);
    const from = await steady;
    const cpuMsPerRefresh = from
      ? (1000 * ((await processCpuSeconds(workerPid)) - from.cpuSeconds)) /
        (refreshed - from.answered)
      : Number.NaN;
    await worker.stop();
    const perSecond = Math.round(connections / seconds);
    return {
      title: "refresh throughput: one worker process, every job due at once",
      table: {
        cores: CORES,
        connections,
        refreshed,
        providerLatencyMs: latencyMs,
        workerConcurrency: concurrency,
        seconds: Number(seconds.toFixed(2)),
        refreshesPerSecond: perSecond,
        workerCpuMsPerRefresh: Number(cpuMsPerRefresh.toFixed(3)),
        rotatedTokenReuse: h.provider.reuseCount,
      },
      lines: [
        `refreshes/s sustained by one worker: ${perSecond} (target >= 1000: ${verdict(perSecond >= 1000)})`,
        `rotated refresh tokens reused: ${h.provider.reuseCount} (target 0: ${verdict(h.provider.reuseCount === 0)})`,
      ],
    };
  } finally {
    await h.redis.flushdb();
    await h.close();
  }
}
