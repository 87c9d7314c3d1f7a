import { setTimeout as sleep } from "node:timers/promises";
import { DecryptionError } from "@evergreen/crypto";
import type { Connection, Integration, PrismaClient } from "@evergreen/db";
import type { HttpMetrics, TokenOutcome } from "@evergreen/observability";
import { appValuesOf, isProviderId } from "@evergreen/providers";
import {
  infraDependency,
  isInfraOutage,
  openAccessToken,
  type RefreshDeps,
  type RefreshRun,
  refreshConnection,
  refreshJobId,
} from "@evergreen/refresh";
import { z } from "zod";
import { HttpError } from "./http-errors";
import { isoTime, responseSchema } from "./route";

export type ConnectionRow = Connection & { integration: Integration };

/** SPEC §3: the token route's answer. */
export const accessTokenSchema = responseSchema(
  "AccessToken",
  z.strictObject({
    accessToken: z.string(),
    tokenType: z.string(),
    expiresAt: isoTime.nullable().describe("null when the token does not expire"),
    scope: z.string().nullable(),
    extra: z
      .record(z.string(), z.string())
      .optional()
      .describe(
        "values the provider gave that calls to its API need: Salesforce `instance_url`, Zoho `api_domain`, Intuit `realmId`, Shopify `shop`; absent when there are none",
      ),
  }),
  "A valid access token, to send to the provider's API.",
);
export type AccessToken = z.output<typeof accessTokenSchema>;

/** A token read's outcome: the metric's, or `not_found`, or `error` for a bug's 500. */
export type TokenReadOutcome = TokenOutcome | "not_found" | "error";

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
  readonly #outcomes: HttpMetrics["tokenRequests"];
  readonly #inFlight = new Map<string, Promise<Attempt>>();
  /** Refreshes this process started and has not stored yet: shutdown waits for them. */
  readonly #providerCalls = new Set<Promise<RefreshRun>>();
  #closing = false;

  constructor(
    deps: RefreshDeps,
    prisma: PrismaClient,
    metrics: Pick<HttpMetrics, "tokenRequests">,
  ) {
    this.#deps = deps;
    this.#prisma = prisma;
    this.#outcomes = metrics.tokenRequests;
  }

  /**
   * A token valid for at least `minValiditySeconds`, refreshing first when the stored one
   * is not. When a refresh failed transiently (or waits out a rate limit) but the stored
   * token has not expired, that token is returned; an expired one never is. A connection
   * in `needs_reauth` or `error` is answered 409 whatever its token's validity (SPEC §3).
   * Once refreshed, a token's lifetime is known: `minValiditySeconds` then counts up to
   * half of it, since asking more of short-lived tokens would refresh (and rotate) on
   * every call, and no refresh could give it.
   */
  async token(
    connectionId: string,
    minValiditySeconds: number,
    /** Told how the read ended, for the audit stream, before the answer is sent. */
    audit?: (outcome: TokenReadOutcome) => void,
  ): Promise<AccessToken> {
    try {
      const { token, refreshed } = await this.#token(connectionId, minValiditySeconds);
      const outcome = refreshed ? "refreshed" : "stored";
      this.#outcomes.inc({ outcome });
      audit?.(outcome);
      return token;
    } catch (error) {
      const outcome = tokenOutcomeOf(error);
      if (outcome) this.#outcomes.inc({ outcome });
      audit?.(
        outcome ?? (error instanceof HttpError && error.statusCode === 404 ? "not_found" : "error"),
      );
      throw error;
    }
  }

  async #token(
    connectionId: string,
    minValiditySeconds: number,
  ): Promise<{ token: AccessToken; refreshed: boolean }> {
    let row = await this.#load(connectionId);
    let refreshed = false;
    refuseUnusable(row);
    const lifetimeMs =
      row.expiresAt && row.lastRefreshedAt
        ? row.expiresAt.getTime() - row.lastRefreshedAt.getTime()
        : Number.POSITIVE_INFINITY;
    if (!validFor(row, Math.min(minValiditySeconds * 1000, lifetimeMs / 2))) {
      // Without a refresh token there is nothing to refresh with. A read changes nothing
      // then: a `tokens:read` caller asking a long validity must not turn a connection
      // whose token still works into `needs_reauth` (the worker does, at its refresh time).
      if (row.refreshToken === null) {
        if (validFor(row, 0)) return { token: this.#tokenOf(row), refreshed };
        throw needsReauth(NO_REFRESH_TOKEN);
      }
      // One backing off after a failure is not refreshed before its retry is due: an app
      // polling through an outage would otherwise call the provider on every request and
      // push the worker's backoff to its maximum.
      const attempt = backingOff(row)
        ? { row, refreshed: false }
        : await this.#refreshShared(row).catch((error: unknown) => this.#unrefreshed(row, error));
      row = attempt.row;
      refreshed = attempt.refreshed;
      refuseUnusable(row);
      if (!validFor(row, 0)) throw unavailable(attempt);
    }
    return { token: this.#tokenOf(row), refreshed };
  }

  /**
   * When no refresh could run (Redis out, this process stopping), a token that still works
   * is what a failed refresh answers (SPEC §3), read again from PostgreSQL so that a grant
   * stopped or deleted meanwhile is not served. Any other error goes up: one from
   * PostgreSQL may have followed the provider's answer (a refused grant whose stop could not
   * be written), and then the stored token is no answer.
   */
  async #unrefreshed(stale: ConnectionRow, error: unknown): Promise<Attempt> {
    const neverRan =
      (error instanceof HttpError && error.code === "unavailable") ||
      infraDependency(error) === "redis";
    if (!neverRan) throw error;
    const row = await this.#load(stale.id);
    refuseUnusable(row);
    if (!validFor(row, 0)) throw error;
    // The reason, not the error: an expected path (a stop, an outage already logged), whose
    // stack would fill the log once per token read.
    this.#deps.log.warn(
      { reason: (error as Error).message, connection: row.id },
      "no refresh could run; answering the stored token, still valid",
    );
    return { row, refreshed: false };
  }

  #tokenOf(row: ConnectionRow): AccessToken {
    const provider = row.integration.provider;
    const extra = isProviderId(provider) ? appValuesOf(provider, row.metadata) : null;
    let accessToken: string;
    try {
      accessToken = openAccessToken(this.#deps.keyRing, row.id, row.accessToken);
    } catch (error) {
      if (error instanceof DecryptionError) {
        this.#deps.metrics.decryptionFailures.inc({ source: "api" });
      }
      throw error;
    }
    return {
      accessToken,
      tokenType: row.tokenType,
      expiresAt: row.expiresAt?.toISOString() ?? null,
      scope: row.scope,
      ...(extra === null ? {} : { extra }),
    };
  }

  /** Refreshes now (joining a refresh in flight) and answers the stored row. */
  async refresh(connectionId: string): Promise<ConnectionRow> {
    const row = await this.#load(connectionId);
    refuseUnusable(row);
    const attempt = await this.#refreshShared(row);
    refuseWhileDead(attempt.row);
    if (!attempt.refreshed) throw unavailable(attempt);
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

  /**
   * Refreshes the connection the caller found stale at `stale.version`. Callers in this
   * process share one attempt; its result is the latest state whichever version each
   * caller had read.
   */
  #refreshShared(stale: ConnectionRow): Promise<Attempt> {
    const running = this.#inFlight.get(stale.id);
    if (running) return running;
    const started = this.#refreshAcrossProcesses(stale).finally(() =>
      this.#inFlight.delete(stale.id),
    );
    this.#inFlight.set(stale.id, started);
    return started;
  }

  async #refreshAcrossProcesses(stale: ConnectionRow): Promise<Attempt> {
    const { lock } = this.#deps;
    let before = stale;
    for (let tries = 1; ; tries += 1) {
      // Only at the version found stale: if another process refreshed since (between our
      // read and its lock's release), the refresh is skipped as rescheduled and its result
      // is ours, instead of a second provider call.
      const run = await this.#refreshNow(before);
      if (run.kind === "done") {
        await this.#dropSupersededJob(before, run.connection);
        // The row as stored, with the integration it had: no need to read it back.
        return {
          row: { ...run.connection, integration: before.integration },
          refreshed: run.outcome === "success",
        };
      }
      if (run.kind === "cooling_down") {
        return { row: before, refreshed: false, retryInMs: run.retryInMs };
      }
      if (run.kind === "busy") {
        // Another process (a worker, another api replica) is refreshing: its result is
        // ours. Polling the lock is cheap next to a provider round trip.
        const deadline = Date.now() + lock.ttlMs;
        while ((await lock.remainingMs(before.id)) > 0 && Date.now() < deadline) {
          await sleep(LOCK_POLL_MS);
        }
      }
      const after = await this.#load(before.id);
      // The holder changed nothing (it had nothing to do, or its lease ran out): try
      // ourselves. A skip leaves nothing to try: the row moved on, or is not refreshable.
      if (run.kind === "busy" && after.version === before.version && tries < MAX_TRIES) {
        before = after;
        continue;
      }
      return { row: after, refreshed: after.refreshCount > before.refreshCount };
    }
  }

  /** refreshConnection of the version found stale, unless shutting down; close() waits for it. */
  #refreshNow(stale: Connection): Promise<RefreshRun> {
    if (this.#closing) {
      return Promise.reject(
        new HttpError(503, "unavailable", "this api process is shutting down; retry", {
          retryAfterSeconds: 1,
        }),
      );
    }
    const call = refreshConnection(this.#deps, {
      connectionId: stale.id,
      expectedVersion: stale.version,
      source: "api",
    });
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

/**
 * The token route's outcome for an error it answers with; undefined for those that are no
 * answer about a token (404, 400, a bug's 500). PostgreSQL or Redis unreachable is the
 * same 503 `unavailable` as a process shutting down, as the error handler answers it.
 */
function tokenOutcomeOf(error: unknown): TokenOutcome | undefined {
  if (error instanceof HttpError) {
    switch (error.code) {
      case "needs_reauth":
      case "integration_error":
      case "refresh_failed":
      case "unavailable":
        return error.code;
      default:
        return undefined;
    }
  }
  return error instanceof Error && isInfraOutage(error) ? "unavailable" : undefined;
}

/** A refresh failed and its retry (the row's nextRefreshAt) is not yet due. */
function backingOff(row: Connection): boolean {
  return (
    row.consecutiveFailures > 0 && row.nextRefreshAt !== null && row.nextRefreshAt > new Date()
  );
}

/** Whether the token is still valid `ms` from now; an expired token never is. */
function validFor(row: Connection, ms: number): boolean {
  return row.expiresAt === null || row.expiresAt.getTime() - Date.now() > Math.max(ms, 0);
}

const NO_REFRESH_TOKEN = "the connection has no refresh token";
// docs/adr/0016: the provider never said the grant is gone; the token is not sent again.
const IN_DOUBT =
  "the provider's answer to a refresh was lost and it may have rotated the refresh token, which is not sent again; authorize again";

function needsReauth(why: string): HttpError {
  return new HttpError(
    409,
    "needs_reauth",
    `${why}; send the user through OAuth again and POST the new tokens`,
  );
}

function refuseWhileDead(row: Connection): void {
  if (row.status === "needs_reauth") {
    // Without a refresh token no provider was asked: saying it refused would mislead.
    throw needsReauth(
      row.lastErrorCode === "no_refresh_token"
        ? NO_REFRESH_TOKEN
        : row.lastErrorCode === "in_doubt"
          ? IN_DOUBT
          : "the provider refused the grant",
    );
  }
}

/** SPEC §3: 409 for a dead grant, and for a connection in `error`, however valid its token. */
function refuseUnusable(row: ConnectionRow): void {
  refuseWhileDead(row);
  if (row.status === "error") throw unavailable({ row, refreshed: false });
}

/** Why no fresh token can be had: a configuration to fix (409) or a failure to wait out (503). */
function unavailable({ row, retryInMs }: Attempt): HttpError {
  if (row.status === "error" && row.consecutiveUnknown > 0) {
    // Stopped after answers of no known shape in a row: the provider's doing, or a token URL
    // that leads somewhere else; not a refused client.
    return new HttpError(
      409,
      "integration_error",
      `the token endpoint answered ${row.consecutiveUnknown} times in a row with nothing a token answer looks like (${row.lastErrorCode ?? "unknown"}); ` +
        "check the integration's token URL, then update the integration and its connections are refreshed again",
    );
  }
  if (row.status === "error") {
    // SPEC §2: `error` is not retried until the integration is updated, so a Retry-After
    // would promise what will not happen.
    return new HttpError(
      409,
      "integration_error",
      `the provider refused the integration's configuration (${row.lastErrorCode ?? "error"}); ` +
        "update the integration, then its connections are refreshed again",
    );
  }
  const reason =
    retryInMs !== undefined
      ? "the provider is rate-limiting this integration; retry later"
      : `the refresh failed (${row.lastErrorCode ?? "unknown"}); it is retried in the background`;
  const retryAtMs = retryInMs ?? (row.nextRefreshAt ? row.nextRefreshAt.getTime() - Date.now() : 0);
  // SPEC §3: always a Retry-After; a retry already due (overdue, or its time unknown) is 1 s.
  return new HttpError(503, "refresh_failed", reason, {
    retryAfterSeconds: Math.max(1, Math.ceil(retryAtMs / 1000)),
  });
}
