import { fields } from "@evergreen/config";
import { z } from "zod";

export const apiEnv = z.object({
  NODE_ENV: fields.nodeEnv,
  DATABASE_URL: fields.databaseUrl,
  REDIS_URL: fields.redisUrl,
  ENCRYPTION_KEYS: fields.encryptionKeys,
  API_KEYS: fields.apiKeys,
  PORT: fields.apiPort,
  REFRESH_BUFFER_SECONDS: fields.refreshBufferSeconds,
  REFRESH_TIMEOUT_MS: fields.refreshTimeoutMs,
  RETRY_BASE_DELAY_MS: fields.retryBaseDelayMs,
  RETRY_MAX_DELAY_MS: fields.retryMaxDelayMs,
  ALLOW_INSECURE_TOKEN_URLS: fields.allowInsecureTokenUrls,
  EGRESS_ALLOWLIST: fields.egressAllowlist,
  LOG_LEVEL: fields.logLevel,
  EVERGREEN_VERSION: fields.evergreenVersion,
});

export type ApiEnv = z.output<typeof apiEnv>;
