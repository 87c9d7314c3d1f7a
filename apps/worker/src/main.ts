import { describeConfig, loadConfigOrExit } from "@evergreen/config";
import { KeyRing } from "@evergreen/crypto";
import { createDatabase } from "@evergreen/db";
import {
  createLogger,
  createMetrics,
  handleShutdown,
  startOpsServer,
} from "@evergreen/observability";
import { createRedis } from "@evergreen/redis";
import { createRefreshDeps, createRefreshQueue, lockTtlMs } from "@evergreen/refresh";
import { workerEnv } from "./env";
import { startRefreshWorker } from "./refresh-worker";

async function main(): Promise<void> {
  const { config, warnings } = loadConfigOrExit("worker", workerEnv, process.env);
  const log = createLogger({ name: "worker", level: config.LOG_LEVEL });
  const shutdown = handleShutdown(log);
  for (const warning of warnings) log.warn(warning);
  log.info({ config: describeConfig(config) }, "starting");

  const database = createDatabase({
    url: config.DATABASE_URL,
    poolSize: Math.min(config.WORKER_CONCURRENCY, 20),
  });
  shutdown.add("database", () => database.close());
  const redis = createRedis(config.REDIS_URL, "producer", "evergreen-worker");
  shutdown.add("redis", () => redis.quit());
  const consumer = createRedis(config.REDIS_URL, "consumer", "evergreen-worker-consumer");
  shutdown.add("redis consumer", () => consumer.quit());
  const queue = createRefreshQueue(redis);
  shutdown.add("queue", () => queue.close());
  const metrics = createMetrics("worker");

  const worker = startRefreshWorker(
    createRefreshDeps({
      env: config,
      pool: database.pool,
      redis,
      queue,
      keyRing: new KeyRing(config.ENCRYPTION_KEYS),
      metrics,
      log,
      maxSockets: config.WORKER_CONCURRENCY,
    }),
    {
      connection: consumer,
      concurrency: config.WORKER_CONCURRENCY,
      lockDurationMs: lockTtlMs(config),
      log,
    },
  );
  // Closing waits for in-flight refreshes to finish, so none is cut between the provider's
  // answer and the database write: allow a full HTTP timeout plus the store retries.
  shutdown.add("refresh worker", () => worker.close(), config.REFRESH_TIMEOUT_MS + 15_000);

  const ops = await startOpsServer(config.METRICS_PORT, {
    registry: metrics.registry,
    checks: { database: () => database.pool.query("SELECT 1"), redis: () => redis.ping() },
  });
  shutdown.add("ops server", () => ops.close());
  log.info({ port: ops.port, concurrency: config.WORKER_CONCURRENCY }, "ops server listening");
}

await main();
