import { fields, SHORT_KEYS_IN_PRODUCTION, shortApiKeys } from "@evergreen/config";
import { z } from "zod";

export const apiEnv = z
  .object({
    NODE_ENV: fields.nodeEnv,
    DATABASE_URL: fields.databaseUrl,
    REDIS_URL: fields.redisUrl,
    REDIS_CLUSTER_NODES: fields.redisClusterNodes,
    REFRESH_QUEUE_SHARDS: fields.refreshQueueShards,
    ENCRYPTION_KEYS: fields.encryptionKeys,
    API_KEYS: fields.apiKeys,
    PORT: fields.apiPort,
    PUBLIC_URL: fields.publicUrl,
    REFRESH_BUFFER_SECONDS: fields.refreshBufferSeconds,
    REFRESH_TIMEOUT_MS: fields.refreshTimeoutMs,
    RETRY_BASE_DELAY_MS: fields.retryBaseDelayMs,
    RETRY_MAX_DELAY_MS: fields.retryMaxDelayMs,
    ALLOW_INSECURE_TOKEN_URLS: fields.allowInsecureTokenUrls,
    EGRESS_ALLOWLIST: fields.egressAllowlist,
    LOG_LEVEL: fields.logLevel,
    AUDIT_LOG: fields.auditLog,
    EVERGREEN_VERSION: fields.evergreenVersion,
  })
  .refine(...fields.retryDelaysInOrder)
  .refine((env) => env.NODE_ENV !== "production" || shortApiKeys(env.API_KEYS).length === 0, {
    path: ["API_KEYS"],
    message: SHORT_KEYS_IN_PRODUCTION,
    when: fields.whenParsed("NODE_ENV", "API_KEYS"),
  })
  // Authorization codes come back through it: in clear text they could be read on the way
  // and exchanged first. Loopback traffic never leaves the machine.
  .refine(
    (env) => {
      const url = env.PUBLIC_URL === undefined ? null : new URL(env.PUBLIC_URL);
      return !(
        env.NODE_ENV === "production" &&
        url?.protocol === "http:" &&
        !/^(localhost|127(\.\d{1,3}){3}|\[::1\])$/.test(url.hostname)
      );
    },
    {
      path: ["PUBLIC_URL"],
      message: "must use https in production (authorization codes come back through it)",
      when: fields.whenParsed("NODE_ENV", "PUBLIC_URL"),
    },
  );

export type ApiEnv = z.output<typeof apiEnv>;

/** PUBLIC_URL, else the api's own loopback address (SPEC §4). */
export function publicUrl(env: Pick<ApiEnv, "PUBLIC_URL" | "PORT">): string {
  return env.PUBLIC_URL ?? `http://127.0.0.1:${env.PORT}`;
}
