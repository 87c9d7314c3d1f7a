import { fields } from "@evergreen/config";
import { z } from "zod";

export const schedulerEnv = z.object({
  NODE_ENV: fields.nodeEnv,
  DATABASE_URL: fields.databaseUrl,
  REDIS_URL: fields.redisUrl,
  METRICS_PORT: fields.schedulerMetricsPort,
  RECONCILE_INTERVAL_SECONDS: fields.reconcileIntervalSeconds,
  REFRESH_BUFFER_SECONDS: fields.refreshBufferSeconds,
  EVENT_RETENTION_DAYS: fields.eventRetentionDays,
  LOG_LEVEL: fields.logLevel,
  EVERGREEN_VERSION: fields.evergreenVersion,
});

export type SchedulerEnv = z.output<typeof schedulerEnv>;
