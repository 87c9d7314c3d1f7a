import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/prisma/client";

export interface DatabaseOptions {
  readonly url: string;
  /** Pool size. @defaultValue 10 */
  readonly poolSize?: number;
  /**
   * How long a statement may run: PostgreSQL cancels it past this (`statement_timeout`,
   * SQLSTATE 57014). A PostgreSQL that does not answer at all (a frozen VM, dropped packets)
   * cannot cancel anything: a statement unanswered `UNANSWERED_MARGIN_MS` longer has its
   * connection closed (see `closeWhenUnanswered`). Also how long a request waits to open a
   * connection or to get one from the pool. @defaultValue no limit
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
    ...(timeoutMs === undefined
      ? {}
      : {
          connectionTimeoutMillis: timeoutMs,
          // PostgreSQL stops what it was asked to give up on: closing our end alone leaves
          // the statement running, and its write landing after the caller was told 503.
          statement_timeout: timeoutMs,
          // A process frozen inside a transaction holds its row locks until this.
          idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
        }),
  });
  // An idle client's connection can end under it (PostgreSQL restarted, the connection
  // terminated by an administrator). The pool drops that client and the next query opens
  // another; without a listener the error would crash the process.
  pool.on("error", () => {});
  if (timeoutMs !== undefined) {
    pool.on("connect", (client) => closeWhenUnanswered(client, timeoutMs + UNANSWERED_MARGIN_MS));
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

/** Past `statement_timeout`, the time for PostgreSQL's cancellation to come back. */
const UNANSWERED_MARGIN_MS = 2_000;
const IDLE_IN_TRANSACTION_MS = 60_000;

/**
 * Closes `client`'s connection when one of its statements goes unanswered for `timeoutMs`
 * (a PostgreSQL that hangs: a frozen VM, dropped packets). Every statement queued on it then
 * fails ("Connection terminated unexpectedly"), the pool discards it, and PostgreSQL rolls
 * back whatever transaction it had open once it sees the connection gone (a statement it
 * had already received still runs, cancelled by its own statement_timeout).
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
    }
    let result: unknown;
    try {
      result = query(...args);
    } catch (error) {
      // Refused before it was sent (no statement, no callback): nothing to wait for.
      settle();
      throw error;
    }
    if (typeof callback === "function") return result;
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
