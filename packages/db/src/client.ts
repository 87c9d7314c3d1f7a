import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/prisma/client";

export interface DatabaseOptions {
  readonly url: string;
  /** Pool size. @defaultValue 10 */
  readonly poolSize?: number;
  /** PostgreSQL cancels a statement running longer; 0 for no limit. @defaultValue 60000 */
  readonly statementTimeoutMs?: number;
  /** A new connection (TCP and start-up) not ready by then fails its query. @defaultValue 10000 */
  readonly connectTimeoutMs?: number;
}

/**
 * Bounds on waiting for PostgreSQL. Without them a host that stops answering without
 * resetting its connections (a network partition, a frozen VM, SIGSTOP) held every query,
 * and with it a refresh under its lock or an api request, for as long as the OS kept the
 * socket: the pool's connect waited out TCP's retries and an idle pooled connection was
 * never found dead. Every statement of the apps is short (sweeps, prunes and rotations work
 * in batches), so a minute is far past any healthy one.
 */
function poolConfig({
  url,
  poolSize = 10,
  statementTimeoutMs = 60_000,
  connectTimeoutMs = 10_000,
}: DatabaseOptions): pg.PoolConfig {
  return {
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: connectTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    statement_timeout: statementTimeoutMs,
    // A process frozen inside a transaction would hold its row locks for as long as it is.
    idle_in_transaction_session_timeout: 60_000,
  };
}

/** A Prisma client on the pure-JS `pg` driver adapter: no native engine at run time. */
export function createPrismaClient(options: DatabaseOptions): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg(poolConfig(options)) });
}

export interface Database {
  readonly prisma: PrismaClient;
  /** The pool under `prisma`, for hot paths written in SQL. */
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

/** A Prisma client and its `pg` pool, shared: one set of connections for both. */
export function createDatabase(options: DatabaseOptions): Database {
  const pool = new pg.Pool(poolConfig(options));
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
