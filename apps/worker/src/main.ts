import { describeConfig, loadConfigOrExit } from "@evergreen/config";
import { KeyRing } from "@evergreen/crypto";
import { createDatabase, exitIfSchemaNotCurrent } from "@evergreen/db";
import {
  ClientErrorLog,
  createLogger,
  createMetrics,
  exitIfCannotListen,
  handleShutdown,
  startOpsServer,
} from "@evergreen/observability";
import { closeRedis, createRedis, redisTarget } from "@evergreen/redis";
import {
  createRefreshDeps,
  createRevocationQueue,
  joinShardLayout,
  lockTtlMs,
  RefreshLayout,
  RefreshQueues,
  refreshDrainMs,
  requeuePendingRevocations,
} from "@evergreen/refresh";
import {
  createWebhookQueue,
  OutboxDispatcher,
  WebhookEndpointStore,
  webhookDrainMs,
} from "@evergreen/webhooks";
import { consumerLiveness } from "./consumer-liveness";
import { workerEnv } from "./env";
import { startRefreshWorker } from "./refresh-worker";
import { startRevocationWorker } from "./revocation-worker";
import { startWebhookWorker } from "./webhook-worker";

async function main(): Promise<void> {
  const { config, warnings } = loadConfigOrExit("worker", workerEnv, process.env);
  const log = createLogger({
    name: "worker",
    level: config.LOG_LEVEL,
    // JSON lines wherever something collects them; a developer's terminal gets readable ones.
    pretty: config.NODE_ENV !== "production" && process.stdout.isTTY === true,
  });
  const shutdown = handleShutdown(log);
  for (const warning of warnings) log.warn(warning);
  log.info({ config: describeConfig(config) }, "starting");
  const errors = new ClientErrorLog(log);
  await exitIfSchemaNotCurrent(config.DATABASE_URL, log);

  const database = createDatabase({
    url: config.DATABASE_URL,
    poolSize: Math.min(config.WORKER_CONCURRENCY, 20),
  });
  shutdown.add("database", () => database.close());
  const redis = createRedis(redisTarget(config), "producer", "evergreen-worker");
  errors.watch("redis", redis);
  shutdown.add("redis", () => closeRedis(redis));
  const consumerConnection = createRedis(
    redisTarget(config),
    "consumer",
    "evergreen-worker-consumer",
  );
  errors.watch("redis consumer", consumerConnection);
  shutdown.add("redis consumer", () => closeRedis(consumerConnection));
  const queue = new RefreshQueues(redis, new RefreshLayout(config.REFRESH_QUEUE_SHARDS));
  errors.watch("queue", queue);
  shutdown.add("queue", () => queue.close());
  const webhookQueue = createWebhookQueue(redis);
  errors.watch("webhook queue", webhookQueue);
  shutdown.add("webhook queue", () => webhookQueue.close());
  const revocationQueue = createRevocationQueue(redis);
  errors.watch("revocation queue", revocationQueue);
  shutdown.add("revocation queue", () => revocationQueue.close());
  const dependencies = {
    postgres: () => database.pool.query("SELECT 1"),
    redis: () => redis.ping(),
  };
  const metrics = createMetrics({ version: config.EVERGREEN_VERSION, dependencies });
  const keyRing = new KeyRing(config.ENCRYPTION_KEYS);

  const refreshDeps = createRefreshDeps({
    env: config,
    pool: database.pool,
    redis,
    queue,
    keyRing,
    metrics,
    log,
    maxSockets: config.WORKER_CONCURRENCY,
  });
  // Every worker consumes every shard (docs/adr/0017), WORKER_CONCURRENCY shared out
  // among them: the process's refreshes in flight stay what the setting says.
  const shardConcurrency = Math.ceil(config.WORKER_CONCURRENCY / queue.shards.length);
  const refreshWorkers = queue.layout.prefixes.map((prefix, shard) => {
    const worker = startRefreshWorker(refreshDeps, {
      connection: consumerConnection,
      prefix,
      concurrency: shardConcurrency,
      lockDurationMs: lockTtlMs(config),
      log,
      // Not before the ops port is ours: exiting on a taken port must not cut a refresh.
      autorun: false,
    });
    errors.watch("worker", worker);
    return [queue.shards.length === 1 ? "refresh" : `refresh shard ${shard}`, worker] as const;
  });

  // Webhooks run where refreshes run: the dispatcher moves committed events from the
  // outbox to the queue, the consumer delivers them (docs/adr/0011). Same egress policy.
  const dispatcher = new OutboxDispatcher({ prisma: database.prisma, queue: webhookQueue, log });
  const deliverySettings = { allowInsecureUrls: refreshDeps.settings.allowInsecureTokenUrls };
  const webhooks = startWebhookWorker(
    {
      prisma: database.prisma,
      endpoints: new WebhookEndpointStore(database.prisma, keyRing),
      egress: refreshDeps.egress,
      queue: webhookQueue,
      metrics,
      log,
      settings: deliverySettings,
    },
    { connection: consumerConnection, log, autorun: false },
  );
  errors.watch("webhook worker", webhooks);
  // Revoke on delete: the grants of deleted connections, revoked at their providers.
  const revocationDeps = {
    prisma: database.prisma,
    keyRing,
    egress: refreshDeps.egress,
    queue: revocationQueue,
    metrics,
    log,
    settings: refreshDeps.settings,
  };
  const revocations = startRevocationWorker(revocationDeps, {
    connection: consumerConnection,
    log,
    autorun: false,
  });
  errors.watch("revocation worker", revocations);
  const consumer = consumerLiveness(
    { ...Object.fromEntries(refreshWorkers), webhook: webhooks, revocation: revocations },
    consumerConnection,
  );

  // Before the first refresh: one would miss an answer parked under another shard count.
  // Before the ops server too, whose /healthz expects the consumers running once it answers.
  await joinShardLayout(redis, queue.layout, log);
  const ops = await startOpsServer(config.METRICS_PORT, {
    registry: metrics.registry,
    checks: { database: dependencies.postgres, redis: dependencies.redis },
    liveness: consumer.check,
    stopping: shutdown.stopping,
  }).catch(exitIfCannotListen(log, "METRICS_PORT", config.METRICS_PORT));
  shutdown.add("ops server", () => ops.close());
  log.info({ port: ops.port, concurrency: config.WORKER_CONCURRENCY }, "ops server listening");
  shutdown.add("webhook dispatcher", () => dispatcher.stop());

  // Closing waits for in-flight refreshes, so none is cut between the provider's answer
  // and the database write, and for deliveries in flight, which a cut would send twice.
  // Both consumers stop taking jobs at once and drain side by side: closed one after the
  // other, the webhook consumer kept starting deliveries through the refreshes' drain and
  // then had 10 s for a delivery that may take 15. Registered last, so it closes first;
  // the ops server keeps answering meanwhile.
  shutdown.add(
    "consumers",
    () => consumer.close(),
    Math.max(refreshDrainMs(config), webhookDrainMs(deliverySettings)),
  );
  // A run loop that ends on an error also shows in /healthz (consumerLiveness).
  for (const [name, worker] of refreshWorkers) {
    worker
      .run()
      .catch((err: unknown) => log.error({ err, consumer: name }, "refresh consumer stopped"));
  }
  webhooks.run().catch((err: unknown) => log.error({ err }, "webhook consumer stopped"));
  revocations.run().catch((err: unknown) => log.error({ err }, "revocation consumer stopped"));
  // Jobs lost to a failed enqueue or a kill between claim and next job: found again here.
  requeuePendingRevocations(revocationDeps).catch((err: unknown) =>
    log.warn({ err }, "could not requeue pending revocations"),
  );
  dispatcher.start();
}

await main();
