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

/** What pg rejects a statement with when PostgreSQL refused it (it carries the SQLSTATE). */
export const DatabaseError = pg.DatabaseError;
