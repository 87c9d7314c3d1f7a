import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/prisma/client";

export interface DatabaseOptions {
  readonly url: string;
  /** Pool size. @defaultValue 10 */
  readonly poolSize?: number;
  /**
   * Longest wait for a connection, whether a new one's handshake or a free one from a full
   * pool; then the query fails ("timeout exceeded when trying to connect"). Unbounded by
   * default: a worker or a sweep rides out a PostgreSQL that hangs.
   */
  readonly connectTimeoutMs?: number;
  /**
   * Longest wait for a statement's answer, measured here (pg's `query_timeout`): no startup
   * parameter, so it works through PgBouncer too. The statement may still run on the
   * server. Unbounded by default.
   */
  readonly queryTimeoutMs?: number;
}

/** A Prisma client on the pure-JS `pg` driver adapter: no native engine at run time. */
export function createPrismaClient({ url, poolSize = 10 }: DatabaseOptions): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: poolSize }) });
}

export interface Database {
  readonly prisma: PrismaClient;
  /** The pool under `prisma`, for hot paths written in SQL. */
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

/** A Prisma client and its `pg` pool, shared: one set of connections for both. */
export function createDatabase({
  url,
  poolSize = 10,
  connectTimeoutMs,
  queryTimeoutMs,
}: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    ...(connectTimeoutMs === undefined ? {} : { connectionTimeoutMillis: connectTimeoutMs }),
    ...(queryTimeoutMs === undefined ? {} : { query_timeout: queryTimeoutMs }),
  });
  // An idle client's connection can end under it (PostgreSQL restarted, the connection
  // terminated by an administrator). The pool drops that client and the next query opens
  // another; without a listener the error would crash the process.
  pool.on("error", () => {});
  if (queryTimeoutMs !== undefined) pool.on("connect", endOnQueryTimeout);
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    prisma,
    pool,
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/**
 * Ends a connection whose statement timed out. pg gives up on the statement but keeps the
 * connection, and drops statements queued behind it unsent: a ROLLBACK among them left the
 * connection inside its transaction, and the pool handed it to the next caller, whose
 * writes then answered success and were never committed. Ended, the pool discards it, and
 * PostgreSQL rolls the transaction back when it reads the Terminate.
 */
function endOnQueryTimeout(client: pg.PoolClient): void {
  const query = client.query;
  const end = (error: unknown) => {
    if (error instanceof Error && error.message === QUERY_TIMEOUT) client.end().catch(() => {});
  };
  // Both of pg's call styles: a callback last (pool.query) or a returned promise (Prisma).
  (client as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const callback = args.at(-1);
    if (typeof callback === "function") {
      args[args.length - 1] = (error: unknown, result: unknown) => {
        end(error);
        callback(error, result);
      };
    }
    const result: unknown = Reflect.apply(query, client, args);
    if (result instanceof Promise) result.catch(end);
    return result;
  };
}

/** pg's message when `query_timeout` runs out. */
const QUERY_TIMEOUT = "Query read timeout";

/** What pg rejects a statement with when PostgreSQL refused it (it carries the SQLSTATE). */
export const DatabaseError = pg.DatabaseError;
