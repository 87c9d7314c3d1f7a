import { fields } from "@evergreen/config";
import { z } from "zod";

export const schedulerEnv = z.object({
  NODE_ENV: fields.nodeEnv,
  DATABASE_URL: fields.databaseUrl,
  REDIS_URL: fields.redisUrl,
  REDIS_CLUSTER_NODES: fields.redisClusterNodes,
  REFRESH_QUEUE_SHARDS: fields.refreshQueueShards,
  METRICS_PORT: fields.schedulerMetricsPort,
  RECONCILE_INTERVAL_SECONDS: fields.reconcileIntervalSeconds,
  REFRESH_BUFFER_SECONDS: fields.refreshBufferSeconds,
  EVENT_RETENTION_DAYS: fields.eventRetentionDays,
  REAUTH_SOON_DAYS: fields.reauthSoonDays,
  // Validation at the provider (integrations' validateIntervalSeconds) sends access tokens,
  // and introspection the client secret: the refresh path's keys and egress rules.
  ENCRYPTION_KEYS: fields.encryptionKeys,
  REFRESH_TIMEOUT_MS: fields.refreshTimeoutMs,
  ALLOW_INSECURE_TOKEN_URLS: fields.allowInsecureTokenUrls,
  EGRESS_ALLOWLIST: fields.egressAllowlist,
  LOG_LEVEL: fields.logLevel,
  EVERGREEN_VERSION: fields.evergreenVersion,
});

export type SchedulerEnv = z.output<typeof schedulerEnv>;
