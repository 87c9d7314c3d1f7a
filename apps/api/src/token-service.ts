import { setTimeout as sleep } from "node:timers/promises";
import type { Connection, Integration, PrismaClient } from "@evergreen/db";
import {
  openAccessToken,
  type RefreshDeps,
  type RefreshRun,
  refreshConnection,
  refreshJobId,
} from "@evergreen/refresh";
import { HttpError } from "./http-errors";

export type ConnectionRow = Connection & { integration: Integration };

export interface AccessToken {
  readonly accessToken: string;
  readonly tokenType: string;
  readonly expiresAt: string | null;
  readonly scope: string | null;
}

/** What a shared refresh left behind, for every caller that joined it. */
interface Attempt {
  readonly row: ConnectionRow;
  /** True when the provider issued a new token (here or in the process we waited for). */
  readonly refreshed: boolean;
  /** Set when the integration is cooling down after a 429. */
  readonly retryInMs?: number;
}

/** How often a caller waiting on another process's refresh looks at the lock. */
const LOCK_POLL_MS = 50;
/** Own tries after a holder released without changing the row (it had nothing to do). */
const MAX_TRIES = 3;

/**
 * On-demand refreshes for the api (SPEC §2 step 3). Single flight at two levels: callers
 * in this process share one promise per connection, and across processes the connection's
 * Redis lock (the workers' lock) admits one refresh; a caller that finds it held waits for
 * the holder and reads what it stored instead of calling the provider again.
 */
export class TokenService {
  readonly #deps: RefreshDeps;
  readonly #prisma: PrismaClient;
  readonly #inFlight = new Map<string, Promise<Attempt>>();
  /** Refreshes this process started and has not stored yet: shutdown waits for them. */
  readonly #providerCalls = new Set<Promise<RefreshRun>>();
  #closing = false;

  constructor(deps: RefreshDeps, prisma: PrismaClient) {
    this.#deps = deps;
    this.#prisma = prisma;
  }

  /**
   * A token valid for at least `minValiditySeconds`, refreshing first when the stored one
   * is not. When the refresh fails but the stored token has not expired, that token is
   * returned. Once refreshed, a token's lifetime is known: `minValiditySeconds` then counts
   * up to half of it, since asking more of short-lived tokens would refresh (and rotate)
   * on every call, and no refresh could give it.
   */
  async token(connectionId: string, minValiditySeconds: number): Promise<AccessToken> {
    let row = await this.#load(connectionId);
    refuseWhileDead(row);
    const lifetimeMs =
      row.expiresAt && row.lastRefreshedAt
        ? row.expiresAt.getTime() - row.lastRefreshedAt.getTime()
        : Number.POSITIVE_INFINITY;
    if (!validFor(row, Math.min(minValiditySeconds * 1000, lifetimeMs / 2))) {
      const attempt = await this.#refreshShared(connectionId);
      row = attempt.row;
      refuseWhileDead(row);
      if (!attempt.refreshed && !validFor(row, 0)) throw refreshFailed(attempt);
    }
    return {
      accessToken: openAccessToken(this.#deps.keyRing, row.id, row.accessToken),
      tokenType: row.tokenType,
      expiresAt: row.expiresAt?.toISOString() ?? null,
      scope: row.scope,
    };
  }

  /** Refreshes now (joining a refresh in flight) and answers the stored row. */
  async refresh(connectionId: string): Promise<ConnectionRow> {
    refuseWhileDead(await this.#load(connectionId));
    const attempt = await this.#refreshShared(connectionId);
    refuseWhileDead(attempt.row);
    if (!attempt.refreshed) throw refreshFailed(attempt);
    return attempt.row;
  }

  /**
   * For shutdown: starts no more refreshes (callers that need one get a 503 and retry on
   * another replica) and resolves once those in flight have stored their answers, since a
   * refresh cut between the provider's answer and the write loses a rotated token.
   */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled(this.#providerCalls);
  }

  #refreshShared(connectionId: string): Promise<Attempt> {
    const running = this.#inFlight.get(connectionId);
    if (running) return running;
    const started = this.#refreshAcrossProcesses(connectionId).finally(() =>
      this.#inFlight.delete(connectionId),
    );
    this.#inFlight.set(connectionId, started);
    return started;
  }

  async #refreshAcrossProcesses(connectionId: string): Promise<Attempt> {
    const { lock } = this.#deps;
    for (let tries = 1; ; tries += 1) {
      const before = await this.#load(connectionId);
      const run = await this.#refreshNow(connectionId);
      switch (run.kind) {
        case "done":
          await this.#dropSupersededJob(before, run.connection);
          // The row as stored, with the integration it had: no need to read it back.
          return {
            row: { ...run.connection, integration: before.integration },
            refreshed: run.outcome === "success",
          };
        case "busy": {
          // Another process (a worker, another api replica) is refreshing: its result is
          // ours. Polling the lock is cheap next to a provider round trip.
          const deadline = Date.now() + lock.ttlMs;
          while ((await lock.remainingMs(connectionId)) > 0 && Date.now() < deadline) {
            await sleep(LOCK_POLL_MS);
          }
          const after = await this.#load(connectionId);
          // The holder changed nothing (it had nothing to do, or its lease ran out): try
          // ourselves.
          if (after.version === before.version && tries < MAX_TRIES) continue;
          return { row: after, refreshed: after.refreshCount > before.refreshCount };
        }
        case "cooling_down":
          return { row: before, refreshed: false, retryInMs: run.retryInMs };
        case "skipped":
          return { row: await this.#load(connectionId), refreshed: false };
      }
    }
  }

  /** refreshConnection, unless shutting down; close() waits for the call. */
  #refreshNow(connectionId: string): Promise<RefreshRun> {
    if (this.#closing) {
      return Promise.reject(
        new HttpError(503, "unavailable", "this api process is shutting down; retry", {
          retryAfterSeconds: 1,
        }),
      );
    }
    const call = refreshConnection(this.#deps, { connectionId, source: "api" });
    this.#providerCalls.add(call);
    const untrack = () => this.#providerCalls.delete(call);
    call.then(untrack, untrack);
    return call;
  }

  /**
   * The job scheduled for the version we just replaced would find the row moved on and do
   * nothing; removing it now frees its memory. A worker holding it (active) keeps it.
   */
  async #dropSupersededJob(before: Connection, after: Connection): Promise<void> {
    if (after.version === before.version) return;
    await this.#deps.queue
      .remove(refreshJobId({ connectionId: before.id, version: before.version }))
      .catch((err: unknown) =>
        this.#deps.log.warn({ err, connection: before.id }, "could not remove a superseded job"),
      );
  }

  async #load(connectionId: string): Promise<ConnectionRow> {
    const row = await this.#prisma.connection.findUnique({
      where: { id: connectionId },
      include: { integration: true },
    });
    if (!row) throw new HttpError(404, "not_found", "no connection with this id");
    return row;
  }
}

function validFor(row: Connection, ms: number): boolean {
  return row.expiresAt === null || row.expiresAt.getTime() - Date.now() >= ms;
}

function refuseWhileDead(row: Connection): void {
  if (row.status === "needs_reauth") {
    throw new HttpError(
      409,
      "needs_reauth",
      "the provider refused the grant; send the user through OAuth again and POST the new tokens",
    );
  }
}

function refreshFailed({ row, retryInMs }: Attempt): HttpError {
  const reason =
    retryInMs !== undefined
      ? "the provider is rate-limiting this integration; retry later"
      : row.status === "error"
        ? "the provider refused the integration's client configuration; update the integration"
        : `the refresh failed (${row.lastErrorCode ?? "unknown"}); it is retried in the background`;
  const retryAtMs = retryInMs ?? (row.nextRefreshAt ? row.nextRefreshAt.getTime() - Date.now() : 0);
  return new HttpError(503, "refresh_failed", reason, {
    retryAfterSeconds: retryAtMs > 0 ? Math.ceil(retryAtMs / 1000) : undefined,
  });
}
