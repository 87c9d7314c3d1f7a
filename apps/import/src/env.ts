import { fields } from "@evergreen/config";
import { z } from "zod";

/** What the import needs to store connections as the api does: same database, keys, schedule. */
export const importEnv = z.object({
  NODE_ENV: fields.nodeEnv,
  DATABASE_URL: fields.databaseUrl,
  REDIS_URL: fields.redisUrl,
  REDIS_CLUSTER_NODES: fields.redisClusterNodes,
  REFRESH_QUEUE_SHARDS: fields.refreshQueueShards,
  ENCRYPTION_KEYS: fields.encryptionKeys,
  REFRESH_BUFFER_SECONDS: fields.refreshBufferSeconds,
  RETRY_BASE_DELAY_MS: fields.retryBaseDelayMs,
  LOG_LEVEL: fields.logLevel,
});
