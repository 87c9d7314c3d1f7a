export type { Pool } from "pg";
export {
  createDatabase,
  createPrismaClient,
  type Database,
  DatabaseError,
  type DatabaseOptions,
} from "./client";
export * from "./generated/prisma/client";
export { exitIfSchemaNotCurrent, schemaProblem } from "./migrate";
export {
  type PruneBatchOptions,
  type PruneEventsOptions,
  type PruneEventsResult,
  pruneConnectionEvents,
  pruneConnectSessions,
  pruneWebhookEvents,
} from "./prune-events";
