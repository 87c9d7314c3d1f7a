import { describeConfig, loadConfigOrExit, shortApiKeyWarnings } from "@evergreen/config";
import { KeyRing } from "@evergreen/crypto";
import { createDatabase, exitIfSchemaNotCurrent } from "@evergreen/db";
import {
  AuditLogError,
  ClientErrorLog,
  createAuditLog,
  createHttpMetrics,
  createLogger,
  createMetrics,
  exitIfCannotListen,
  handleShutdown,
  type Logger,
} from "@evergreen/observability";
import { closeRedis, createRedis, redisTarget } from "@evergreen/redis";
import {
  createRefreshDeps,
  createRevocationQueue,
  joinShardLayout,
  RefreshLayout,
  RefreshQueues,
} from "@evergreen/refresh";
import { createWebhookQueue, WebhookEndpointStore } from "@evergreen/webhooks";
import { registerAdminConsole } from "./admin/admin-console";
import { FleetStats } from "./admin/fleet-stats";
import { AdminSessions } from "./admin/session";
import { auditLineLost } from "./audit-lines";
import { apiEnv, publicUrl } from "./env";
import { registerConnectRoutes } from "./routes/connect";
import { registerConnectionRoutes } from "./routes/connections";
import { registerEventRoutes } from "./routes/events";
import { registerIntegrationRoutes } from "./routes/integrations";
import { registerWebhookRoutes } from "./routes/webhooks";
import { buildServer } from "./server";
import { apiShutdownBudgets } from "./shutdown-budgets";
import { TokenService } from "./token-service";

/**
 * One Redis command; the api's are single-key commands and short scripts. A client waits on
 * every request: a Redis that hangs without closing the connection (a frozen VM, dropped
 * packets) must end in a 503 to retry, not a request that never ends.
 */
const REDIS_COMMAND_TIMEOUT_MS = 5_000;
/**
 * One PostgreSQL statement (PostgreSQL cancels it past this), or opening a connection. The
 * same reasoning as Redis's: a request must end in a 503 to retry. A PostgreSQL that does not
 * answer at all has the connection closed 2 s later (see `createDatabase`).
 */
const POSTGRES_TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  const { config, warnings, fromDevFile } = loadConfigOrExit("api", apiEnv, process.env);
  const log = createLogger({
    name: "api",
    level: config.LOG_LEVEL,
    // JSON lines wherever something collects them; a developer's terminal gets readable ones.
    pretty: config.NODE_ENV !== "production" && process.stdout.isTTY === true,
  });
  const shutdown = handleShutdown(log);
  for (const warning of [...warnings, ...shortApiKeyWarnings(config.API_KEYS)]) log.warn(warning);
  if (config.NODE_ENV === "production" && config.PUBLIC_URL === undefined) {
    // Not refused: an api serving only apps that register their own tokens needs none.
    log.warn(
      `PUBLIC_URL is not set: the connect flow sends providers ${publicUrl(config)}/oauth/callback as its redirect URI, which only a browser on this machine reaches`,
    );
  }
  if (fromDevFile.includes("API_KEYS")) {
    // Development only (production refuses to start without API_KEYS): the developer
    // needs this key to call the API, so it goes to the terminal, not to the log.
    const keys = config.API_KEYS.map(({ key }) => key).join(", ");
    process.stderr.write(`\n  Development API key: ${keys}\n\n`);
  }
  log.info({ config: describeConfig(config) }, "starting");
  const audit = openAuditLog(config.AUDIT_LOG, log);
  // logrotate's postrotate sends SIGHUP: lines go to the new file, not the moved one.
  process.on("SIGHUP", () => {
    try {
      audit.reopen();
      log.info("AUDIT_LOG reopened");
    } catch (error) {
      if (!(error instanceof AuditLogError)) throw error;
      log.error(`${error.message}; still writing to the file opened before`);
    }
  });
  const errors = new ClientErrorLog(log);
  await exitIfSchemaNotCurrent(config.DATABASE_URL, log);

  const database = createDatabase({
    url: config.DATABASE_URL,
    timeoutMs: POSTGRES_TIMEOUT_MS,
  });
  shutdown.add("database", () => database.close());
  const { prisma } = database;
  // The admin console's fleet counts scan every connection (about a second per million), in
  // the background: on a connection of their own, outside the requests' limit.
  const countsDatabase = createDatabase({ url: config.DATABASE_URL, poolSize: 1 });
  shutdown.add("counts database", () => countsDatabase.close());
  const redis = createRedis(redisTarget(config), "producer", "evergreen-api", {
    commandTimeoutMs: REDIS_COMMAND_TIMEOUT_MS,
  });
  errors.watch("redis", redis);
  shutdown.add("redis", () => closeRedis(redis));
  const queue = new RefreshQueues(redis, new RefreshLayout(config.REFRESH_QUEUE_SHARDS));
  errors.watch("queue", queue);
  shutdown.add("queue", () => queue.close());
  const webhookQueue = createWebhookQueue(redis);
  errors.watch("webhook queue", webhookQueue);
  shutdown.add("webhook queue", () => webhookQueue.close());
  const revocationQueue = createRevocationQueue(redis);
  errors.watch("revocation queue", revocationQueue);
  shutdown.add("revocation queue", () => revocationQueue.close());
  const dependencies = { postgres: () => prisma.$queryRaw`SELECT 1`, redis: () => redis.ping() };
  const metrics = createMetrics({ version: config.EVERGREEN_VERSION, dependencies });
  const httpMetrics = createHttpMetrics(metrics.registry);
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
  const tokens = new TokenService(refreshDeps, prisma, httpMetrics);

  const server = await buildServer({
    log,
    audit,
    apiKeys: config.API_KEYS,
    ops: {
      registry: metrics.registry,
      checks: { database: dependencies.postgres, redis: dependencies.redis },
      stopping: shutdown.stopping,
    },
    metrics: httpMetrics,
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
          tokens,
          revocations: revocationQueue,
        }),
      (app) =>
        registerConnectRoutes(app, {
          prisma,
          refresh: refreshDeps,
          publicUrl: publicUrl(config),
        }),
      (app) =>
        registerWebhookRoutes(app, {
          prisma,
          endpoints: new WebhookEndpointStore(prisma, keyRing),
          queue: webhookQueue,
          allowInsecureUrls: refreshDeps.settings.allowInsecureTokenUrls,
          egressPolicy: refreshDeps.egress.policy,
        }),
      (app) => registerEventRoutes(app, { prisma }),
      (app) =>
        registerAdminConsole(app, {
          prisma,
          refresh: refreshDeps,
          tokens,
          revocations: revocationQueue,
          apiKeys: config.API_KEYS,
          sessions: new AdminSessions(redis, config.API_KEYS),
          fleet: new FleetStats(countsDatabase.prisma, {
            onError: (err) => log.warn({ err }, "admin console: counting connections failed"),
          }),
          // Browsers keep a Secure cookie only from https (or localhost): a development api
          // on plain http would lose its session.
          secureCookie: config.NODE_ENV === "production" || publicUrl(config).startsWith("https:"),
        }),
    ],
  });
  // Steps run last-added first. On-demand refreshes drain first: no new provider call
  // starts, those in flight store their answers. Then the server waits for the requests
  // still open, the longest being a caller waiting out another process's lock.
  const budgets = apiShutdownBudgets(config);
  shutdown.add("http server", () => server.close(), budgets.httpServer);
  shutdown.add("on-demand refreshes", () => tokens.close(), budgets.refreshes);
  // Before the first on-demand refresh (see the worker's main).
  await joinShardLayout(redis, queue.layout, log);
  await server
    .listen({ port: config.PORT, host: "0.0.0.0" })
    .catch(exitIfCannotListen(log, "PORT", config.PORT));
}

/** The audit stream, or exit 1 with one line naming AUDIT_LOG when its file cannot be opened. */
function openAuditLog(destination: string, log: Logger) {
  try {
    return createAuditLog({ name: "api", destination, onWriteError: auditLineLost(log) });
  } catch (error) {
    if (!(error instanceof AuditLogError)) throw error;
    log.fatal(error.message);
    process.exit(1);
  }
}

await main();
