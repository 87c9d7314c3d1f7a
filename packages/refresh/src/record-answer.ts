import type { Connection } from "@evergreen/db";
import { hashId } from "@evergreen/observability";
import { backoffMs, type ProviderDefinition, type RefreshResult } from "@evergreen/providers";
import type { WebhookEventType } from "@evergreen/webhooks";
import type {
  ConnectionChange,
  ConnectionEventInput,
  RefreshIntegration,
} from "./connection-store";
import { cooldownScope } from "./cooldown-scope";
import type { RefreshDeps, RefreshRun } from "./refresh-connection";
import {
  type DoubtStage,
  doubtClosedMessage,
  doubtConfirmedMessage,
  graceEnd,
  inDoubtMessage,
} from "./refresh-doubt";
import { computeNextRefreshAt, enqueueRefresh, minRefreshIntervalMs } from "./schedule";
import { resealConnectionToken, sealAccessToken, sealRefreshToken } from "./token-cipher";

// What a classified token answer does to the connection: the row change and event it
// decides (decide), the fenced write that parks a success it cannot store (commit), and the
// next refresh it schedules. The send path that gets the answer is refresh-connection.ts.

/** Where this refresh stood with a refresh token in doubt (see refresh-doubt.ts). */
export interface DoubtContext {
  readonly definition: ProviderDefinition;
  /** Before the send. */
  readonly stage: DoubtStage;
  /**
   * Doubt opens at this send time, unless the row is in doubt already: a send to a provider
   * that rotates whose answer was lost. (An abandoned claim's doubt is on the row: the claim
   * statement writes it.)
   */
  readonly opensAt: Date | null;
}

/** What one classified answer does to the row. */
export interface Decision {
  readonly outcome: RefreshResult["outcome"];
  readonly change: ConnectionChange;
  readonly event: ConnectionEventInput;
  /** For `rate_limited`: how long the integration cools down. */
  readonly waitMs: number;
  /** A parked answer being stored: parking it again is no new answer to count. */
  readonly fromParking?: boolean;
}

/** Stores one classified answer and schedules what follows it. */
export async function record(
  deps: RefreshDeps,
  connection: Connection,
  integration: RefreshIntegration,
  result: RefreshResult,
  doubt?: DoubtContext,
): Promise<RefreshRun> {
  deps.metrics.refreshTotal.inc({ provider: integration.provider, outcome: result.outcome });
  deps.metrics.integrationRefreshTotal.inc({
    integration: integration.key,
    outcome: result.outcome,
  });
  const now = (deps.now ?? (() => new Date()))();
  return commit(
    deps,
    connection,
    integration,
    await decide(deps, connection, integration, result, now, doubt),
    now,
  );
}

async function decide(
  deps: RefreshDeps,
  connection: Connection,
  integration: RefreshIntegration,
  result: RefreshResult,
  now: Date,
  doubt: DoubtContext | undefined,
): Promise<Decision> {
  const { keyRing, settings } = deps;

  // The whole row as it stands; each outcome changes some fields. Under the version fence
  // nobody else has changed it since we read it; a key rotation may have re-sealed its
  // tokens at the same version, so they are written back under the primary key.
  const unchanged: ConnectionChange = {
    accessToken: resealConnectionToken(
      keyRing,
      connection.id,
      "accessToken",
      connection.accessToken,
    ),
    refreshToken:
      connection.refreshToken &&
      resealConnectionToken(keyRing, connection.id, "refreshToken", connection.refreshToken),
    tokenType: connection.tokenType,
    scope: connection.scope,
    expiresAt: connection.expiresAt,
    refreshTokenExpiresAt: connection.refreshTokenExpiresAt,
    status: connection.status,
    version: connection.version + 1,
    nextRefreshAt: connection.nextRefreshAt,
    lastRefreshedAt: connection.lastRefreshedAt,
    refreshCount: connection.refreshCount,
    consecutiveFailures: connection.consecutiveFailures,
    consecutiveUnknown: connection.consecutiveUnknown,
    lastErrorCode: connection.lastErrorCode,
    lastErrorMessage: connection.lastErrorMessage,
    lastErrorAt: connection.lastErrorAt,
    inDoubtSince: connection.inDoubtSince,
    appValues: null,
  };
  const stage = doubt?.stage ?? "none";
  // A doubt outlives answers that settle nothing about the token (a 429, a refused client):
  // dropped with them, the next send would be an ordinary one, the resend of a maybe
  // rotated-away token (docs/adr/0016).
  const inDoubtSince = unchanged.inDoubtSince ?? doubt?.opensAt ?? null;
  let change: ConnectionChange;
  let event: ConnectionEventInput;
  let waitMs = 0;
  // Webhooks tell apps about streaks, not attempts (SPEC §3): any failure after a success
  // (or a registration) opens one and is announced, with `refresh_failed` unless it stops
  // the connection (`needs_reauth`, `error`, always announced); the next success closes it
  // with `recovered`. A stored error is what an open streak leaves on the row.
  const streakOpen = connection.lastErrorAt !== null;
  const firstFailure = streakOpen ? null : "connection.refresh_failed";

  switch (result.outcome) {
    case "success": {
      const bufferSeconds = integration.refreshBufferSeconds ?? settings.defaultBufferSeconds;
      change = {
        ...unchanged,
        accessToken: sealAccessToken(keyRing, connection.id, result.accessToken),
        // No refresh_token in the answer: the provider keeps the old one valid.
        refreshToken: result.refreshToken
          ? sealRefreshToken(keyRing, connection.id, result.refreshToken)
          : unchanged.refreshToken,
        tokenType: result.tokenType,
        scope: result.scope ?? connection.scope,
        expiresAt: result.expiresAt,
        // A new refresh token's end is what the answer says, unknown if it says nothing;
        // the old one kept keeps its own.
        refreshTokenExpiresAt: result.refreshToken
          ? result.refreshTokenExpiresAt
          : (result.refreshTokenExpiresAt ?? connection.refreshTokenExpiresAt),
        status: "active",
        nextRefreshAt: computeNextRefreshAt({
          expiresAt: result.expiresAt,
          issuedAt: now,
          bufferSeconds,
          minIntervalMs: minRefreshIntervalMs(settings.retryBaseDelayMs),
          random: deps.random,
        }),
        lastRefreshedAt: now,
        refreshCount: connection.refreshCount + 1,
        consecutiveFailures: 0,
        consecutiveUnknown: 0,
        lastErrorCode: null,
        lastErrorMessage: null,
        lastErrorAt: null,
        // An answer ends any doubt: the refresh token it carries (or keeps) is the live one.
        inDoubtSince: null,
        appValues: result.appValues ?? null,
      };
      event = {
        type: "refreshed",
        outcome: result.outcome,
        errorCode: null,
        message: null,
        webhook: streakOpen ? "connection.recovered" : null,
      };
      break;
    }
    case "invalid_grant": {
      // In doubt, this is the provider confirming that the lost answer rotated the token.
      const confirmed =
        stage === "none" ? result : { ...result, message: doubtConfirmedMessage(result.message) };
      change = {
        ...unchanged,
        status: "needs_reauth",
        nextRefreshAt: null,
        inDoubtSince: null,
        ...failure(confirmed, now),
      };
      event = failureEvent("needs_reauth", confirmed, "connection.needs_reauth");
      break;
    }
    case "invalid_client":
      change = {
        ...unchanged,
        status: "error",
        nextRefreshAt: null,
        inDoubtSince,
        ...failure(result, now),
      };
      event = failureEvent("refresh_failed", result, "connection.error");
      break;
    case "rate_limited": {
      // Not an attempt: the same job waits (see the worker), so the version stays.
      const scope = cooldownScope(integration, connection);
      const statedMs = Math.min(result.retryAfterMs ?? 0, settings.maxRetryAfterMs ?? 3_600_000);
      if (statedMs >= settings.retryBaseDelayMs) {
        waitMs = statedMs;
        await deps.cooldown.start(scope, waitMs);
      } else {
        // No wait stated, or one under the base delay (`Retry-After: 0`): a fixed wait
        // would retry a provider that is rate-limiting us at that pace for as long as it
        // refuses (Discord bans clients for that), so it doubles up to RETRY_MAX_DELAY_MS.
        waitMs = await deps.cooldown.startDoubling(
          scope,
          settings.retryBaseDelayMs,
          settings.retryMaxDelayMs,
        );
      }
      change = {
        ...unchanged,
        version: connection.version,
        // When the next try really comes: the one that met the 429 was due (and would read
        // as overdue to the scheduler for as long as the cooldown lasts). A connection with
        // no proactive refresh (refreshed on demand only) keeps none.
        nextRefreshAt:
          connection.nextRefreshAt &&
          laterOf(connection.nextRefreshAt, new Date(now.getTime() + waitMs)),
        inDoubtSince,
        ...failure(result, now),
      };
      event = failureEvent("refresh_failed", result, firstFailure);
      break;
    }
    case "transient":
    case "unknown": {
      const failures = connection.consecutiveFailures + 1;
      // Only unknown answers in a row count toward giving up: after an outage's transient
      // failures, one odd answer (a load balancer's HTML page) must still be retried.
      const unknowns = result.outcome === "unknown" ? connection.consecutiveUnknown + 1 : 0;
      const giveUp = unknowns >= (settings.unknownRetryLimit ?? 5);
      const expired = connection.expiresAt !== null && connection.expiresAt <= now;
      // A stated Retry-After (a 503's) bounds the backoff from below, never replaces it, as
      // for revocations and webhook deliveries: `Retry-After: 0` on every 503 would otherwise
      // retry at full speed. Capped like the backoff (RETRY_MAX_DELAY_MS): a provider's
      // error page cannot hold connections longer than its own failures would.
      const statedMs =
        result.outcome === "transient"
          ? Math.min(result.retryAfterMs ?? 0, settings.retryMaxDelayMs)
          : 0;
      const backoffAt =
        now.getTime() + Math.max(statedMs, backoffMs(settings, failures, deps.random));
      // In doubt, the stored token is resent only inside the provider's reuse grace, and
      // the retry goes before the window closes, halving what is left of it; with no grace,
      // or too little of it left for a retry, the token is never sent again (ADR 0016).
      const windowEnd =
        doubt && inDoubtSince ? graceEnd(inDoubtSince, doubt.definition.reuseGrace) : null;
      const windowLeftMs = windowEnd === null ? 0 : windowEnd.getTime() - now.getTime();
      if (doubt && inDoubtSince && windowLeftMs < settings.retryBaseDelayMs) {
        const closed = {
          ...result,
          errorCode: "in_doubt",
          message: doubtClosedMessage(doubt.definition),
        };
        change = {
          ...unchanged,
          status: "needs_reauth",
          nextRefreshAt: null,
          consecutiveFailures: failures,
          consecutiveUnknown: unknowns,
          inDoubtSince,
          ...failure(closed, now),
        };
        event = failureEvent("needs_reauth", closed, "connection.needs_reauth");
        deps.metrics.refreshStoppedInDoubt.inc({ provider: integration.provider });
        break;
      }
      // A token still valid is retried no later than when it expires: that try is its last
      // chance, and failing it is what marks the connection `expired` (SPEC §2), rather
      // than a backoff of up to RETRY_MAX_DELAY_MS showing it `active` meanwhile.
      const expiresAtMs = !expired && connection.expiresAt ? connection.expiresAt.getTime() : null;
      const retryAt = new Date(
        Math.min(
          windowEnd !== null && windowEnd.getTime() < backoffAt
            ? now.getTime() + windowLeftMs / 2
            : backoffAt,
          expiresAtMs ?? Number.POSITIVE_INFINITY,
        ),
      );
      const stated =
        doubt?.opensAt && unchanged.inDoubtSince === null
          ? { ...result, errorCode: "in_doubt", message: inDoubtMessage(doubt.definition) }
          : result;
      change = {
        ...unchanged,
        status: giveUp ? "error" : expired ? "expired" : "active",
        nextRefreshAt: giveUp ? null : retryAt,
        consecutiveFailures: failures,
        consecutiveUnknown: unknowns,
        inDoubtSince,
        ...failure(stated, now),
      };
      event = failureEvent("refresh_failed", stated, giveUp ? "connection.error" : firstFailure);
      break;
    }
    default:
      return assertNever(result);
  }
  return { outcome: result.outcome, change, event, waitMs };
}

/**
 * Writes a decision, fenced, and schedules what follows. A success that cannot be written
 * (PostgreSQL down past the retries) is parked in Redis before the error goes up: the
 * provider may have rotated the refresh token, and the next try must store this answer,
 * not send the revoked token again.
 */
export async function commit(
  deps: RefreshDeps,
  connection: Connection,
  integration: RefreshIntegration,
  { outcome, change, event, waitMs, fromParking }: Decision,
  now: Date,
): Promise<RefreshRun> {
  const { metrics } = deps;
  const provider = integration.provider;
  // Per-call bindings rather than a child logger: pino builds a child's serializers and
  // redaction each time, a measurable share of a worker's CPU at hundreds of refreshes/s.
  const about = () => ({
    connection: connection.id,
    externalId: hashId(connection.externalId, deps.keyRing.deriveKey("log pseudonyms")),
    provider,
  });
  const fence = { id: connection.id, version: connection.version };
  const stored = await persistWithRetries(
    () =>
      deps.store.write(
        {
          ...fence,
          // Stopping for a configuration problem holds only for the configuration read.
          ...(change.status === "error" ? { integrationUpdatedAt: integration.updatedAt } : {}),
        },
        change,
        event,
      ),
    (err, attempt) =>
      deps.log.warn({ ...about(), err, attempt }, "storing the refresh result failed; retrying"),
  ).catch(async (error: unknown) => {
    if (outcome === "success") {
      await deps.parked.park(fence, change, event);
      if (!fromParking) metrics.parkedAnswersTotal.inc({ action: "stored" });
      deps.log.error(
        { ...about(), err: error },
        "refresh result parked in Redis until it can be stored",
      );
    }
    throw error;
  });
  if (!stored) {
    // No row at our version: someone wrote a newer one while we held what we thought was
    // the lock (our lease ran out), or the connection was deleted. Their write wins; ours
    // is dropped, never merged over theirs.
    deps.log.warn({ ...about(), outcome }, "refresh result dropped: connection changed meanwhile");
    return { kind: "skipped", reason: "lost_race" };
  }

  if (outcome === "success" && connection.expiresAt) {
    metrics.tokenRemaining.observe(
      { provider },
      (connection.expiresAt.getTime() - now.getTime()) / 1000,
    );
  }
  const { nextRefreshAt } = change;
  // A 429's job waits as it is (see the worker): nothing new to enqueue.
  if (nextRefreshAt && outcome !== "rate_limited") {
    try {
      await enqueueRefresh(
        deps.queue,
        { connectionId: connection.id, version: stored.version },
        nextRefreshAt,
        now,
      );
    } catch (err) {
      // The row says when; the scheduler's next sweep enqueues what is missing.
      deps.log.error(
        { ...about(), err },
        "could not enqueue the next refresh; the scheduler will repair it",
      );
    }
  }
  // A connection stopped needs someone to act: the user must consent again (needs_reauth),
  // or the integration be fixed (error). It stands out at warn; failures that are retried
  // at info, each with the code it failed with (the provider's, sanitized, or the egress's).
  const level = change.status === "needs_reauth" || change.status === "error" ? "warn" : "info";
  if (deps.log.isLevelEnabled(level)) {
    const errorCode = event.errorCode ?? undefined;
    deps.log[level](
      { ...about(), outcome, errorCode, status: change.status, nextRefreshAt },
      "refresh recorded",
    );
  }
  if (outcome === "rate_limited") return { kind: "cooling_down", retryInMs: waitMs };
  return { kind: "done", outcome, connection: stored };
}

function laterOf(a: Date, b: Date): Date {
  return a > b ? a : b;
}

/**
 * The provider has answered and may have rotated the refresh token: this write is the only
 * copy of the new one. A database blip must not lose it (a retried job would send the
 * revoked token), so retry here, under the still-extended lease, for about 3 s; past that
 * the answer is parked (see commit).
 */
async function persistWithRetries<T>(
  write: () => Promise<T>,
  onRetry: (err: unknown, attempt: number) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await write();
    } catch (error) {
      if (attempt >= 5) throw error;
      onRetry(error, attempt);
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** (attempt - 1)));
    }
  }
}

function failure(result: { errorCode: string; message: string }, now: Date) {
  return { lastErrorCode: result.errorCode, lastErrorMessage: result.message, lastErrorAt: now };
}

function failureEvent(
  type: "needs_reauth" | "refresh_failed",
  result: { outcome: string; errorCode: string; message: string },
  webhook: WebhookEventType | null,
): ConnectionEventInput {
  return {
    type,
    outcome: result.outcome,
    errorCode: result.errorCode,
    message: result.message,
    webhook,
  };
}

function assertNever(value: never): never {
  throw new Error(`unhandled refresh result: ${JSON.stringify(value)}`);
}
