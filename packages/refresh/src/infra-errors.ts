import { DatabaseError } from "@evergreen/db";
import type { Dependency } from "@evergreen/observability";

/**
 * Errors ioredis rejects a command with: Redis answered with an error (READONLY after a
 * failover, OOM), or the command ran out of reconnection attempts.
 */
const REDIS_ERRORS: ReadonlySet<string> = new Set(["ReplyError", "MaxRetriesPerRequestError"]);
/**
 * ioredis's messages for a command on a connection that is closed or not writable, or not
 * answered within its command timeout, and its cluster client's for a cluster it cannot
 * reach or whose slots it cannot find.
 */
const REDIS_UNREACHABLE =
  /^(Connection is closed\.|Stream isn't writeable|None of startup nodes is available|Cluster is disconnected\.|Cluster isn't ready|Too many Cluster redirections|Command timed out)/;
/**
 * Redis's replies while it cannot serve a key for now: a replica not promoted yet, a node
 * loading its data, a cluster mid-failover or without a quorum.
 */
const REDIS_UNAVAILABLE_REPLY = /^(READONLY|LOADING|CLUSTERDOWN|TRYAGAIN|MASTERDOWN) /;
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
 * SQLSTATE classes 08 (connection exception) and 57P (shutting down, or not yet accepting),
 * 53300 (too many connections), 3D000 (the database does not exist: dropped or not yet
 * created under a running app, which /readyz reports unavailable too) and 57014 (a statement
 * cancelled by the api's statement_timeout: PostgreSQL too slow or blocked to answer).
 */
const UNAVAILABLE_SQLSTATE = /^(08|57P|53300$|3D000$|57014$)/;
/** What Prisma's pg adapter calls a socket error or a full server (under `meta`). */
const ADAPTER_UNAVAILABLE: ReadonlySet<string> = new Set([
  "DatabaseNotReachable",
  "ConnectionClosed",
  "SocketTimeout",
  "TooManyConnections",
  "DatabaseDoesNotExist",
]);
/**
 * Prisma's codes for a database unreachable, timed out, or its connection closed, and P2028:
 * a transaction that could not start in time (every pooled connection busy) or outlived its
 * time limit. A burst of registrations on a healthy database met P2028 and got 500s.
 */
const PRISMA_UNAVAILABLE: ReadonlySet<string> = new Set([
  "P1001",
  "P1002",
  "P1003",
  "P1017",
  "P2028",
]);

type DriverError = Error & { code?: unknown; meta?: unknown };

/**
 * Which backing service an error on the refresh path came from, by its type: Prisma's and
 * pg's errors are PostgreSQL's, ioredis's are Redis's. Undefined for anything else (a key
 * missing from the ring, a bug), which is no outage to count.
 */
export function infraDependency(error: unknown): Dependency | undefined {
  if (!(error instanceof Error)) return undefined;
  if (REDIS_ERRORS.has(error.name) || REDIS_UNREACHABLE.test(error.message)) return "redis";
  if (
    error instanceof DatabaseError ||
    error.name.startsWith("PrismaClient") ||
    lostConnection(error)
  ) {
    return "postgres";
  }
  return undefined;
}

/**
 * PostgreSQL or Redis unreachable, or not serving for now: an outage to retry through (the
 * API's 503), not a bug (500). Narrower than `infraDependency`: a constraint violation is
 * PostgreSQL's error but no outage.
 */
export function isInfraOutage(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, meta } = error as DriverError;
  return (
    error.name === "MaxRetriesPerRequestError" ||
    REDIS_UNREACHABLE.test(error.message) ||
    (error.name === "ReplyError" && REDIS_UNAVAILABLE_REPLY.test(error.message)) ||
    (error.name.startsWith("PrismaClient") &&
      typeof code === "string" &&
      PRISMA_UNAVAILABLE.has(code)) ||
    lostConnection(error) ||
    (typeof code === "string" && UNAVAILABLE_SQLSTATE.test(code)) ||
    adapterUnavailable(meta)
  );
}

function lostConnection(error: DriverError): boolean {
  const { code } = error;
  return (typeof code === "string" && SOCKET_ERRORS.has(code)) || PG_CONNECTION.test(error.message);
}

/**
 * What Prisma's driver adapter says under P2010 ("Raw query failed") and P2039 ("Database
 * error"): the socket error it met (a raw query to an unreachable server), or PostgreSQL's
 * own code. Found by `npm run chaos`: token reads got 500 while a restarted PostgreSQL
 * answered 57P03 (not yet accepting connections).
 */
function adapterUnavailable(meta: unknown): boolean {
  if (typeof meta !== "object" || meta === null || !("driverAdapterError" in meta)) return false;
  const { driverAdapterError } = meta as { driverAdapterError?: { cause?: unknown } };
  const cause = driverAdapterError?.cause as { kind?: unknown; originalCode?: unknown } | undefined;
  return (
    (typeof cause?.kind === "string" && ADAPTER_UNAVAILABLE.has(cause.kind)) ||
    (typeof cause?.originalCode === "string" && UNAVAILABLE_SQLSTATE.test(cause.originalCode))
  );
}
