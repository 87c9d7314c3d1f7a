import { DatabaseError } from "@evergreen/db";
import type { Dependency } from "@evergreen/observability";

/**
 * Errors ioredis rejects a command with: Redis answered with an error (READONLY after a
 * failover, OOM), or the command ran out of reconnection attempts.
 */
const REDIS_ERRORS: ReadonlySet<string> = new Set(["ReplyError", "MaxRetriesPerRequestError"]);
/** ioredis's messages for a command on a connection that is closed or not writable. */
const REDIS_CLOSED = /^(Connection is closed\.|Stream isn't writeable)/;
/** Socket failures; ioredis never rejects a command with one (it retries), pg does. */
const SOCKET_ERRORS: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
/** pg's own messages for a connection lost, refused by a full pool, or not opened in time. */
const PG_CONNECTION =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/**
 * Which backing service an error on the refresh path came from, by its type: Prisma's and
 * pg's errors are PostgreSQL's, ioredis's are Redis's. Undefined for anything else (a key
 * missing from the ring, a bug), which is no outage to count.
 */
export function infraDependency(error: unknown): Dependency | undefined {
  if (!(error instanceof Error)) return undefined;
  if (REDIS_ERRORS.has(error.name) || REDIS_CLOSED.test(error.message)) return "redis";
  const code = (error as { code?: unknown }).code;
  if (
    error instanceof DatabaseError ||
    error.name.startsWith("PrismaClient") ||
    (typeof code === "string" && SOCKET_ERRORS.has(code)) ||
    PG_CONNECTION.test(error.message)
  ) {
    return "postgres";
  }
  return undefined;
}
