import { fields } from "@evergreen/config";
import { z } from "zod";

export const workerEnv = z
  .object({
    NODE_ENV: fields.nodeEnv,
    DATABASE_URL: fields.databaseUrl,
    REDIS_URL: fields.redisUrl,
    REDIS_CLUSTER_NODES: fields.redisClusterNodes,
    REFRESH_QUEUE_SHARDS: fields.refreshQueueShards,
    ENCRYPTION_KEYS: fields.encryptionKeys,
    METRICS_PORT: fields.workerMetricsPort,
    WORKER_CONCURRENCY: fields.workerConcurrency,
    REFRESH_BUFFER_SECONDS: fields.refreshBufferSeconds,
    REFRESH_TIMEOUT_MS: fields.refreshTimeoutMs,
    RETRY_BASE_DELAY_MS: fields.retryBaseDelayMs,
    RETRY_MAX_DELAY_MS: fields.retryMaxDelayMs,
    ALLOW_INSECURE_TOKEN_URLS: fields.allowInsecureTokenUrls,
    EGRESS_ALLOWLIST: fields.egressAllowlist,
    LOG_LEVEL: fields.logLevel,
    EVERGREEN_VERSION: fields.evergreenVersion,
  })
  .refine(...fields.retryDelaysInOrder);

export type WorkerEnv = z.output<typeof workerEnv>;
