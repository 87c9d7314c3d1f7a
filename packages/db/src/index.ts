export type { Pool } from "pg";
export {
  createDatabase,
  createPrismaClient,
  type Database,
  DatabaseError,
  type DatabaseOptions,
} from "./client";
export * from "./generated/prisma/client";
export {
  type PruneEventsOptions,
  type PruneEventsResult,
  pruneConnectionEvents,
} from "./prune-events";
