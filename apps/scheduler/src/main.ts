import { describeConfig, loadConfigOrExit } from "@evergreen/config";
import { KeyRing } from "@evergreen/crypto";
import { createPrismaClient, exitIfSchemaNotCurrent } from "@evergreen/db";
import {
  ClientErrorLog,
  createLogger,
  createMetrics,
  createSchedulerMetrics,
  exitIfCannotListen,
  handleShutdown,
  startOpsServer,
} from "@evergreen/observability";
import { Cooldown, closeRedis, createRedis, redisTarget } from "@evergreen/redis";
import {
  createValidationDeps,
  ParkedAnswers,
  RefreshLayout,
  RefreshQueues,
} from "@evergreen/refresh";
import { schedulerEnv } from "./env";
import { startSweeps } from "./sweeps";

async function main(): Promise<void> {
  const { config, warnings } = loadConfigOrExit("scheduler", schedulerEnv, process.env);
  const log = createLogger({
    name: "scheduler",
    level: config.LOG_LEVEL,
    // JSON lines wherever something collects them; a developer's terminal gets readable ones.
    pretty: config.NODE_ENV !== "production" && process.stdout.isTTY === true,
  });
  const shutdown = handleShutdown(log);
  for (const warning of warnings) log.warn(warning);
  log.info({ config: describeConfig(config) }, "starting");
  const errors = new ClientErrorLog(log);
  await exitIfSchemaNotCurrent(config.DATABASE_URL, log);

  const prisma = createPrismaClient({ url: config.DATABASE_URL });
  shutdown.add("database", () => prisma.$disconnect());
  const redis = createRedis(redisTarget(config), "producer", "evergreen-scheduler");
  errors.watch("redis", redis);
  shutdown.add("redis", () => closeRedis(redis));
  const queue = new RefreshQueues(redis, new RefreshLayout(config.REFRESH_QUEUE_SHARDS));
  errors.watch("queue", queue);
  shutdown.add("queue", () => queue.close());
  const dependencies = { postgres: () => prisma.$queryRaw`SELECT 1`, redis: () => redis.ping() };
  const metrics = createMetrics({ version: config.EVERGREEN_VERSION, dependencies });

  const ops = await startOpsServer(config.METRICS_PORT, {
    registry: metrics.registry,
    checks: { database: dependencies.postgres, redis: dependencies.redis },
    stopping: shutdown.stopping,
  }).catch(exitIfCannotListen(log, "METRICS_PORT", config.METRICS_PORT));
  shutdown.add("ops server", () => ops.close());
  log.info({ port: ops.port }, "ops server listening");

  const sweeps = startSweeps(
    {
      prisma,
      queue,
      redis,
      // The gauge reads shard 0's copy: a cooldown is written to every shard.
      cooldown: new Cooldown(redis, queue.layout.keys("cooldown")),
      parked: new ParkedAnswers(redis, queue.layout.keys("parked")),
      metrics: createSchedulerMetrics(metrics.registry),
      log,
      eventRetentionDays: config.EVENT_RETENTION_DAYS,
      validation: createValidationDeps({
        env: config,
        prisma,
        keyRing: new KeyRing(config.ENCRYPTION_KEYS),
        metrics,
      }),
      reauthSoonDays: config.REAUTH_SOON_DAYS,
    },
    config.RECONCILE_INTERVAL_SECONDS * 1000,
  );
  shutdown.add("sweeps", () => sweeps.stop());
}

await main();
