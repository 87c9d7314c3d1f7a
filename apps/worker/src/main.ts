import { describeConfig, loadConfigOrExit } from "@evergreen/config";
import { createPrismaClient } from "@evergreen/db";
import {
  createLogger,
  createMetrics,
  handleShutdown,
  startOpsServer,
} from "@evergreen/observability";
import { createRedis } from "@evergreen/redis";
import { workerEnv } from "./env";

async function main(): Promise<void> {
  const { config, warnings } = loadConfigOrExit("worker", workerEnv, process.env);
  const log = createLogger({ name: "worker", level: config.LOG_LEVEL });
  const shutdown = handleShutdown(log);
  for (const warning of warnings) log.warn(warning);
  log.info({ config: describeConfig(config) }, "starting");

  const prisma = createPrismaClient({ url: config.DATABASE_URL });
  shutdown.add("database", () => prisma.$disconnect());
  const redis = createRedis(config.REDIS_URL, "producer", "evergreen-worker");
  shutdown.add("redis", () => redis.quit());
  const metrics = createMetrics("worker");

  const ops = await startOpsServer(config.METRICS_PORT, {
    registry: metrics.registry,
    checks: { database: () => prisma.$queryRaw`SELECT 1`, redis: () => redis.ping() },
  });
  shutdown.add("ops server", () => ops.close());
  log.info({ port: ops.port }, "ops server listening");
}

await main();
