import { fields } from "@evergreen/config";
import { z } from "zod";

/** What `npm run keys:status` and `npm run keys:rotate` read. */
export const keysEnv = z.object({
  NODE_ENV: fields.nodeEnv,
  DATABASE_URL: fields.databaseUrl,
  REDIS_URL: fields.redisUrl,
  ENCRYPTION_KEYS: fields.encryptionKeys,
  AUDIT_LOG: fields.auditLog,
});
