import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/prisma/client";

export interface DatabaseOptions {
  readonly url: string;
  /** Pool size. @defaultValue 10 */
  readonly poolSize?: number;
  /**
   * How long a statement may go unanswered, and a new connection unopened, before its
   * connection is closed and what waited on it fails (see `closeWhenUnanswered`).
   * @defaultValue no limit
   */
  readonly timeoutMs?: number;
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
export function createDatabase({ url, poolSize = 10, timeoutMs }: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    ...(timeoutMs === undefined ? {} : { connectionTimeoutMillis: timeoutMs }),
  });
  // An idle client's connection can end under it (PostgreSQL restarted, the connection
  // terminated by an administrator). The pool drops that client and the next query opens
  // another; without a listener the error would crash the process.
  pool.on("error", () => {});
  if (timeoutMs !== undefined) {
    pool.on("connect", (client) => closeWhenUnanswered(client, timeoutMs));
  }
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

type QueryArgs = unknown[];

/**
 * Closes `client`'s connection when one of its statements goes unanswered for `timeoutMs`
 * (a PostgreSQL that hangs: a frozen VM, dropped packets). Every statement queued on it then
 * fails ("Connection terminated unexpectedly"), the pool discards it, and PostgreSQL rolls
 * back whatever transaction it had open once it sees the connection gone.
 *
 * Not node-postgres's own `query_timeout`: that stops waiting but leaves the statement
 * running and the connection in use, and Prisma's adapter gives a connection whose COMMIT or
 * ROLLBACK was given up on back to the pool with its transaction still open, where later
 * statements joined it and were lost with it (reproduced; docs/operations.md).
 */
function closeWhenUnanswered(client: pg.PoolClient, timeoutMs: number): void {
  const query = client.query.bind(client) as (...args: QueryArgs) => unknown;
  const bounded = (...args: QueryArgs): unknown => {
    const timer = setTimeout(() => client.connection.stream.destroy(), timeoutMs);
    const settle = () => clearTimeout(timer);
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === "function") {
      args[last] = (error: unknown, result: unknown) => {
        settle();
        callback(error, result);
      };
      return query(...args);
    }
    const result = query(...args);
    if (result instanceof Promise) result.then(settle, settle);
    // A statement that reports through a callback in its config, or an object submitted
    // as is (a cursor): nothing here to learn its end by, so no limit, as before.
    else settle();
    return result;
  };
  Object.assign(client, { query: bounded });
}

/** What pg rejects a statement with when PostgreSQL refused it (it carries the SQLSTATE). */
export const DatabaseError = pg.DatabaseError;
