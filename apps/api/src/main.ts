import { describeConfig, loadConfigOrExit } from "@evergreen/config";
import { KeyRing } from "@evergreen/crypto";
import { createDatabase } from "@evergreen/db";
import { createLogger, createMetrics, handleShutdown } from "@evergreen/observability";
import { createRedis } from "@evergreen/redis";
import { createRefreshDeps, createRefreshQueue } from "@evergreen/refresh";
import { apiEnv } from "./env";
import { registerConnectionRoutes } from "./routes/connections";
import { registerIntegrationRoutes } from "./routes/integrations";
import { buildServer } from "./server";
import { TokenService } from "./token-service";

async function main(): Promise<void> {
  const { config, warnings, fromDevFile } = loadConfigOrExit("api", apiEnv, process.env);
  const log = createLogger({ name: "api", level: config.LOG_LEVEL });
  const shutdown = handleShutdown(log);
  for (const warning of warnings) log.warn(warning);
  if (fromDevFile.includes("API_KEYS")) {
    // Development only (production refuses to start without API_KEYS): the developer
    // needs this key to call the API, so it goes to the terminal, not to the log.
    process.stderr.write(`\n  Development API key: ${config.API_KEYS.join(", ")}\n\n`);
  }
  log.info({ config: describeConfig(config) }, "starting");

  const database = createDatabase({ url: config.DATABASE_URL });
  shutdown.add("database", () => database.close());
  const { prisma } = database;
  const redis = createRedis(config.REDIS_URL, "producer", "evergreen-api");
  shutdown.add("redis", () => redis.quit());
  const queue = createRefreshQueue(redis);
  shutdown.add("queue", () => queue.close());
  const metrics = createMetrics("api");
  const keyRing = new KeyRing(config.ENCRYPTION_KEYS);
  // The api refreshes on demand with the workers' lock, settings and metrics.
  const refreshDeps = createRefreshDeps({
    env: config,
    pool: database.pool,
    redis,
    queue,
    keyRing,
    metrics,
    log,
    maxSockets: 50,
  });

  const server = await buildServer({
    log,
    apiKeys: config.API_KEYS,
    ops: {
      registry: metrics.registry,
      checks: { database: () => prisma.$queryRaw`SELECT 1`, redis: () => redis.ping() },
    },
    routes: [
      (app) =>
        registerIntegrationRoutes(app, {
          prisma,
          keyRing,
          queue,
          log,
          allowInsecureTokenUrls: refreshDeps.settings.allowInsecureTokenUrls,
          egressPolicy: refreshDeps.egress.policy,
        }),
      (app) =>
        registerConnectionRoutes(app, {
          prisma,
          refresh: refreshDeps,
          tokens: new TokenService(refreshDeps, prisma),
        }),
    ],
  });
  shutdown.add("http server", () => server.close());
  await server.listen({ port: config.PORT, host: "0.0.0.0" });
}

await main();
