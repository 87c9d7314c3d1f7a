import type { KeyRing } from "@evergreen/crypto";
import type { Connection } from "@evergreen/db";
import type { EgressClient, EgressFailureCode } from "@evergreen/egress";
import type { Logger, Metrics, RefreshOutcome } from "@evergreen/observability";
import { hashId } from "@evergreen/observability";
import {
  backoffMs,
  buildRefreshRequest,
  classifyAnswer,
  connectionTokenHost,
  type InsecureTokenUrls,
  isProviderId,
  PROVIDERS,
  ProviderConfigError,
  type ProviderDefinition,
  type RefreshResult,
} from "@evergreen/providers";
import type { Cooldown, Lease, RedisLock } from "@evergreen/redis";
import type { WebhookEventType } from "@evergreen/webhooks";
import type {
  ConnectionChange,
  ConnectionEventInput,
  ConnectionStore,
  RefreshIntegration,
} from "./connection-store";
import { infraDependency } from "./infra-errors";
import { REFRESHABLE } from "./jobs";
import type { ParkedAnswers } from "./parked-answers";
import {
  DOUBT_UNRESOLVED_MESSAGE,
  type DoubtStage,
  doubtConfirmedMessage,
  doubtStage,
  graceEnd,
  inDoubtMessage,
  LOST_ANSWERS,
} from "./refresh-doubt";
import type { RefreshQueues } from "./refresh-queues";
import { computeNextRefreshAt, enqueueRefresh, minRefreshIntervalMs } from "./schedule";
import {
  openClientSecret,
  openRefreshToken,
  resealConnectionToken,
  sealAccessToken,
  sealRefreshToken,
} from "./token-cipher";

export interface RefreshSettings {
  /** REFRESH_TIMEOUT_MS: token endpoint time limit. */
  readonly timeoutMs: number;
  /** REFRESH_BUFFER_SECONDS. */
  readonly defaultBufferSeconds: number;
  /** RETRY_BASE_DELAY_MS. */
  readonly retryBaseDelayMs: number;
  /** RETRY_MAX_DELAY_MS. */
  readonly retryMaxDelayMs: number;
  /** ALLOW_INSECURE_TOKEN_URLS, with the development loopback allowance (see wiring.ts). */
  readonly allowInsecureTokenUrls: InsecureTokenUrls;
  /** Longest Retry-After honoured. @defaultValue 3600000 */
  readonly maxRetryAfterMs?: number;
  /** Consecutive `unknown` answers retried before the connection goes to `error`. @defaultValue 5 */
  readonly unknownRetryLimit?: number;
}

export interface RefreshDeps {
  readonly store: ConnectionStore;
  readonly keyRing: KeyRing;
  readonly lock: RedisLock;
  readonly cooldown: Cooldown;
  readonly parked: ParkedAnswers;
  readonly queue: RefreshQueues;
  /** Sends the token request; the time limit comes from `settings.timeoutMs`. */
  readonly egress: EgressClient;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly settings: RefreshSettings;
  /** @defaultValue () => new Date() */
  readonly now?: () => Date;
  /** @defaultValue Math.random */
  readonly random?: () => number;
}

export interface RefreshRequestInput {
  readonly connectionId: string;
  /** Only refresh if the row is still at this version (a scheduled job's version). */
  readonly expectedVersion?: number;
  readonly source: "worker" | "api";
  /**
   * Observe lateness: how long after the row's `nextRefreshAt` (at `expectedVersion`) this
   * refresh started. For a scheduled job's first run; re-delays (busy lock, cooldown) are
   * the system working as intended.
   */
  readonly measureLateness?: boolean;
}

export type RefreshRun =
  /** The provider answered and the answer is stored. */
  | { readonly kind: "done"; readonly outcome: RefreshOutcome; readonly connection: Connection }
  /** Another process holds the connection's lock; try again after `retryInMs`. */
  | { readonly kind: "busy"; readonly retryInMs: number }
  /** The integration is cooling down after a 429 (maybe this one); try again after `retryInMs`. */
  | { readonly kind: "cooling_down"; readonly retryInMs: number }
  /** Nothing to do: deleted, rescheduled since (other version), or not refreshable. */
  | { readonly kind: "skipped"; readonly reason: string };

/**
 * SPEC §2, step 2: lock, load, call the token endpoint, classify, store (fenced by the
 * row's version), schedule the next refresh, unlock. Persisting the new tokens comes
 * before anything else, since a rotating provider has already revoked the old ones.
 */
export async function refreshConnection(
  deps: RefreshDeps,
  input: RefreshRequestInput,
): Promise<RefreshRun> {
  try {
    return await refreshUnderLock(deps, input);
  } catch (error) {
    // Whoever called retries (the worker re-delays the job, the api answers 503): counted
    // here once per refresh, whichever step met the outage.
    const dependency = infraDependency(error);
    if (dependency) deps.metrics.refreshInfraErrors.inc({ dependency });
    throw error;
  }
}

async function refreshUnderLock(
  deps: RefreshDeps,
  input: RefreshRequestInput,
): Promise<RefreshRun> {
  const { lock, metrics } = deps;
  const lease = await lock.acquire(input.connectionId);
  if (!lease) {
    metrics.lockContended.inc({ source: input.source });
    return { kind: "busy", retryInMs: Math.max(50, await lock.remainingMs(input.connectionId)) };
  }
  try {
    return await refreshLocked(deps, input, lease);
  } finally {
    // A failed release must not turn a stored refresh into an error: the lease expires.
    await lease.release().catch((err: unknown) => deps.log.warn({ err }, "lock release failed"));
  }
}

async function refreshLocked(
  deps: RefreshDeps,
  input: RefreshRequestInput,
  lease: Lease,
): Promise<RefreshRun> {
  const { keyRing, settings } = deps;
  const now = deps.now ?? (() => new Date());
  const loaded = await deps.store.load(input.connectionId);
  if (!loaded) return { kind: "skipped", reason: "deleted" };
  const { connection, integration } = loaded;
  if (input.expectedVersion !== undefined && connection.version !== input.expectedVersion) {
    return { kind: "skipped", reason: "rescheduled" };
  }
  if (!REFRESHABLE.includes(connection.status)) {
    return { kind: "skipped", reason: connection.status };
  }
  const provider = integration.provider;
  // From the row, not from the job: a job rebuilt after Redis lost its keys, or re-timed by
  // the sweep, was enqueued recently, yet the token it serves may already have expired.
  if (input.measureLateness && connection.nextRefreshAt) {
    const lateMs = Math.max(0, now().getTime() - connection.nextRefreshAt.getTime());
    deps.metrics.refreshLateness.observe({ provider }, lateMs / 1000);
  }
  if (!isProviderId(provider)) {
    return record(deps, connection, integration, {
      outcome: "invalid_client",
      errorCode: "unknown_provider",
      message: "the integration names a provider this build does not know",
    });
  }

  // An answer a failed write parked comes first: the provider has already spent the
  // refresh token we hold. Looked up alongside the cooldown, in the same round trip, which
  // also renews the lease: from here to the claim and the send nothing else waits on I/O.
  // After a pause longer than the lease's TTL (a long GC, SIGSTOP, a frozen VM) another
  // process may already be refreshing, and sending our refresh token could reuse one the
  // provider has rotated. A renewed lease covers the whole HTTP timeout, with two timeouts
  // to spare for a pause after this.
  const [parked, cooling, renewed] = await Promise.all([
    deps.parked.take(connection.id),
    deps.cooldown.remainingMs(cooldownScope(integration, connection), connection.id),
    lease.extend(),
  ]);
  let extended = renewed;
  if (parked?.fence.version === connection.version) {
    // Parked before a key rotation: stored under the first key, so the row is not put back
    // under a key the rotation has already cleared from PostgreSQL.
    const { accessToken, refreshToken } = parked.change;
    const change = {
      ...parked.change,
      accessToken: resealConnectionToken(keyRing, connection.id, "accessToken", accessToken),
      refreshToken:
        refreshToken === null
          ? null
          : resealConnectionToken(keyRing, connection.id, "refreshToken", refreshToken),
    };
    const run = await commit(
      deps,
      connection,
      integration,
      { outcome: "success", ...parked, change, waitMs: 0, fromParking: true },
      now(),
    );
    await deps.parked.drop(connection.id);
    deps.metrics.parkedAnswersTotal.inc({ action: "drained" });
    return run;
  }
  // Parked for a version the row has left (the app sent new tokens): obsolete.
  if (parked) {
    await deps.parked.drop(connection.id);
    deps.metrics.parkedAnswersTotal.inc({ action: "drained" });
    // That drop was a round trip: renewed again, so nothing waits on I/O between the
    // renewal and the claim (a rare path: an answer parked for a version the row has left).
    if (cooling <= 0) extended = extended && (await lease.extend());
  }
  if (cooling > 0) return { kind: "cooling_down", retryInMs: cooling };

  if (!connection.refreshToken) {
    return record(deps, connection, integration, {
      outcome: "invalid_grant",
      errorCode: "no_refresh_token",
      message: "the connection has no refresh token; send new tokens",
    });
  }

  const definition = PROVIDERS[provider];
  const stage = doubtStage(connection, definition, now());
  if (stage === "spent") return stopUnresolved(deps, connection, integration, definition);

  // Decryption errors (a key missing from this process's ring during a rotation) throw:
  // the job is retried and the operator alerted, the connection's state is not touched.
  const clientSecret = openClientSecret(keyRing, integration.id, integration.clientSecret);
  const refreshToken = openRefreshToken(keyRing, connection.id, connection.refreshToken);
  let request: ReturnType<typeof buildRefreshRequest>;
  try {
    request = buildRefreshRequest(
      {
        provider,
        clientId: integration.clientId,
        clientSecret,
        tokenUrl: integration.tokenUrl,
        clientAuth: integration.clientAuth,
        bodyFormat: integration.bodyFormat,
        scopes: integration.scopes,
      },
      { refreshToken, metadata: asRecord(connection.metadata) },
      { allowInsecureTokenUrls: settings.allowInsecureTokenUrls },
    );
  } catch (error) {
    if (!(error instanceof ProviderConfigError)) throw error;
    return record(deps, connection, integration, {
      outcome: "invalid_client",
      errorCode: "integration_config",
      message: (error as Error).message,
    });
  }

  if (lease.signal.aborted || !extended) return { kind: "busy", retryInMs: 1_000 };
  // Redis is the fast path; PostgreSQL has the last word. The Redis lock key can be lost
  // (FLUSHALL, a restart without AOF, failover to a lagging replica) while a refresh is in
  // flight; the claim, fenced by the row's version, keeps a second refresh of this version
  // from sending the same refresh token meanwhile. It lasts as long as a lease.
  const claimFrom = performance.now();
  const claimed = await deps.store.claim({
    id: connection.id,
    version: connection.version,
    leaseMs: deps.lock.ttlMs,
  });
  if (!claimed) return { kind: "busy", retryInMs: 1_000 };
  // The claim holds for a lease from when PostgreSQL granted it. A process frozen while its
  // answer was on the way (SIGSTOP, a frozen VM) finds it granted on waking, maybe long
  // expired, and another process may meanwhile have resent this token carefully and had it
  // rotated: seen under chaos, a worker paused 11 s sent 15 tokens rotated a second before.
  // Sent only while the claim outlives the answer's wait and a timeout to store it; otherwise
  // the next try finds the claim abandoned and resends carefully (docs/adr/0016).
  if (performance.now() - claimFrom > deps.lock.ttlMs - 2 * settings.timeoutMs) {
    deps.log.warn(
      { connection: connection.id, provider },
      "claim granted too late to send under it; not sent",
    );
    return { kind: "busy", retryInMs: 1_000 };
  }
  // An earlier claim of this version ran out with no answer written: its holder may have
  // sent the refresh token and died, so for a rotating provider this send is in doubt from
  // that claim's start (its expiry less the lease) (docs/adr/0016).
  const abandonedAt =
    claimed.abandonedUntil && definition.rotatesRefreshToken
      ? new Date(claimed.abandonedUntil.getTime() - deps.lock.ttlMs)
      : null;
  const abandonedSend = stage === "none" ? abandonedAt : null;
  // Staged again at the send, not at the load: renewing the lease and claiming may take long
  // (Redis or PostgreSQL recovering from an outage), and a grace window can close meanwhile
  // (Okta's lasts 30 s). A send staged `grace` after its window would be one more resend of
  // a maybe rotated-away token before the careful one.
  const sentAt = now();
  const staged = doubtStage(
    abandonedSend ? { inDoubtSince: abandonedSend, inDoubtResent: false } : connection,
    definition,
    sentAt,
  );
  // Already in doubt, the abandoned claim may have made the one careful resend before its
  // holder died (SIGKILL between sending and storing): that was the one.
  const sendStage =
    abandonedAt && stage !== "none" && doubtStage(connection, definition, abandonedAt) === "careful"
      ? "spent"
      : staged;
  if (abandonedAt) {
    deps.log.warn(
      { connection: connection.id, provider, stage: sendStage },
      "an earlier refresh of this version was abandoned after claiming: refresh in doubt",
    );
  }
  if (sendStage === "spent") return stopUnresolved(deps, connection, integration, definition);

  const started = performance.now();
  // The egress client's default size limit, 64 KiB, is the bound SPEC §2 sets on token answers.
  const answer = await deps.egress.send(request, { timeoutMs: settings.timeoutMs });
  deps.metrics.refreshDuration.observe({ provider }, (performance.now() - started) / 1000);
  if ("failure" in answer) {
    // A rotating provider may have rotated the token whose answer we lost: in doubt.
    const lost = definition.rotatesRefreshToken && LOST_ANSWERS.has(answer.failure);
    return record(deps, connection, integration, EGRESS_FAILURES[answer.failure], {
      definition,
      stage: sendStage,
      opensAt: abandonedSend ?? (lost ? sentAt : null),
    });
  }
  const result = classifyAnswer(provider, answer, now(), {
    fallbackLifetimeSeconds: integration.accessTokenLifetimeSeconds,
    secrets: [refreshToken, clientSecret],
  });
  return record(deps, connection, integration, result, {
    definition,
    stage: sendStage,
    opensAt: abandonedSend,
  });
}

/**
 * The careful resend of a token in doubt was made and got no verdict: sending it again could
 * only repeat a possibly rotated-away token at the provider, so the connection stops without
 * a request (docs/adr/0016).
 */
function stopUnresolved(
  deps: RefreshDeps,
  connection: Connection,
  integration: RefreshIntegration,
  definition: ProviderDefinition,
): Promise<RefreshRun> {
  return record(
    deps,
    connection,
    integration,
    { outcome: "unknown", errorCode: "in_doubt", message: DOUBT_UNRESOLVED_MESSAGE },
    { definition, stage: "spent", opensAt: null },
  );
}

/** Where this refresh stood with a refresh token in doubt (see refresh-doubt.ts). */
interface DoubtContext {
  readonly definition: ProviderDefinition;
  /** Before the send. */
  readonly stage: DoubtStage;
  /**
   * Doubt opens at this send time, unless an answer settles it: a send whose answer was
   * lost, or one whose holder abandoned its claim, to a provider that rotates.
   */
  readonly opensAt: Date | null;
}

/** What one classified answer does to the row. */
interface Decision {
  readonly outcome: RefreshResult["outcome"];
  readonly change: ConnectionChange;
  readonly event: ConnectionEventInput;
  /** For `rate_limited`: how long the integration cools down. */
  readonly waitMs: number;
  /** A parked answer being stored: parking it again is no new answer to count. */
  readonly fromParking?: boolean;
}

/** Stores one classified answer and schedules what follows it. */
async function record(
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
    inDoubtResent: connection.inDoubtResent,
    appValues: null,
  };
  const stage = doubt?.stage ?? "none";
  // A doubt this send opened (an abandoned claim's) outlives answers that settle nothing
  // about the token (a 429, a refused client): dropped with them, the next send would be an
  // ordinary one, and a further lost answer would allow yet another resend (docs/adr/0016).
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
        inDoubtResent: false,
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
        inDoubtResent: false,
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
      // Never under the base delay: `Retry-After: 0` would otherwise loop at full speed
      // against a provider that is rate-limiting us.
      waitMs = Math.max(
        settings.retryBaseDelayMs,
        Math.min(result.retryAfterMs ?? 0, settings.maxRetryAfterMs ?? 3_600_000),
      );
      await deps.cooldown.start(cooldownScope(integration, connection), waitMs);
      change = { ...unchanged, version: connection.version, inDoubtSince, ...failure(result, now) };
      event = failureEvent("refresh_failed", result, firstFailure);
      break;
    }
    case "transient":
    case "unknown": {
      const failures = connection.consecutiveFailures + 1;
      // Only unknown answers in a row count toward giving up: after an outage's transient
      // failures, one odd answer (a load balancer's HTML page) must still be retried.
      const unknowns = result.outcome === "unknown" ? connection.consecutiveUnknown + 1 : 0;
      // The careful resend of a token in doubt got no verdict: stop (docs/adr/0016).
      const unresolved = stage === "careful" || stage === "spent";
      const giveUp = unresolved || unknowns >= (settings.unknownRetryLimit ?? 5);
      const expired = connection.expiresAt !== null && connection.expiresAt <= now;
      const retryAt = new Date(now.getTime() + backoffMs(settings, failures, deps.random));
      // Inside a grace window, the resend must go before the window closes.
      const windowEnd =
        doubt && inDoubtSince ? graceEnd(inDoubtSince, doubt.definition.reuseGrace) : null;
      const stated = unresolved
        ? { ...result, errorCode: "in_doubt", message: DOUBT_UNRESOLVED_MESSAGE }
        : doubt?.opensAt && unchanged.inDoubtSince === null
          ? { ...result, errorCode: "in_doubt", message: inDoubtMessage(doubt.definition) }
          : result;
      change = {
        ...unchanged,
        status: giveUp ? "error" : expired ? "expired" : "active",
        nextRefreshAt: giveUp
          ? null
          : windowEnd !== null && windowEnd > now && windowEnd < retryAt
            ? windowEnd
            : retryAt,
        consecutiveFailures: failures,
        consecutiveUnknown: unknowns,
        inDoubtSince,
        inDoubtResent: unchanged.inDoubtResent || unresolved,
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
async function commit(
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
  if (outcome === "rate_limited") return { kind: "cooling_down", retryInMs: waitMs };
  const { nextRefreshAt } = change;
  if (nextRefreshAt) {
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
  // A dead grant needs someone to act (the user must consent again): it stands out at warn.
  const level = change.status === "needs_reauth" ? "warn" : "info";
  if (deps.log.isLevelEnabled(level)) {
    deps.log[level](
      { ...about(), outcome, status: change.status, nextRefreshAt },
      "refresh recorded",
    );
  }
  return { kind: "done", outcome, connection: stored };
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

/**
 * What each egress failure does to the connection (and how a failed code exchange reports
 * it). The codes stored (and so shown to API
 * callers) are the egress client's generic ones, never a socket's: ECONNREFUSED against
 * ECONNRESET would tell a caller which internal ports are open.
 */
export const EGRESS_FAILURES = {
  timeout: {
    outcome: "transient",
    errorCode: "timeout",
    message: "the token endpoint did not answer in time",
  },
  unreachable: {
    outcome: "transient",
    errorCode: "unreachable",
    message: "the token endpoint could not be reached",
  },
  // Not a network blip: the endpoint answered, with something no token answer looks like.
  // As any unrecognised answer, retried with backoff a bounded number of times, then
  // `error`, so a hostile or broken endpoint is neither hammered nor retried forever.
  response_too_large: {
    outcome: "unknown",
    errorCode: "response_too_large",
    message: "the token endpoint's answer exceeded the size limit (64 KiB)",
  },
  // The provider had answered (it may have rotated the refresh token) when the body broke off.
  interrupted: {
    outcome: "transient",
    errorCode: "interrupted",
    message: "the token endpoint's answer broke off after it began",
  },
  // The token URL leads to an internal address. For a name that depends on DNS at that
  // moment (a resolver sinkholing to 0.0.0.0 during an incident, split-horizon DNS), so it
  // is retried with backoff like a network failure rather than stopped for good: nothing
  // is sent while refused, and literal internal addresses are refused at registration.
  // Which address it resolved to stays out of the message.
  refused_by_policy: {
    outcome: "transient",
    errorCode: "egress_refused",
    message:
      "the token URL leads to a loopback, private or other internal address that EGRESS_ALLOWLIST does not cover",
  },
} as const satisfies Record<EgressFailureCode, RefreshResult>;

/**
 * What a 429 holds back: the integration, or only the connection's own token host where the
 * provider picks one per connection (one Shopify shop's or Okta org's rate limit is not
 * another's, and one tenant must not stall every other for up to the Retry-After cap).
 */
function cooldownScope(integration: RefreshIntegration, connection: Connection): string {
  const { provider, tokenUrl } = integration;
  const host = isProviderId(provider)
    ? connectionTokenHost({ provider, tokenUrl }, asRecord(connection.metadata))
    : null;
  return host === null ? integration.id : `${integration.id}:${host}`;
}

/** Connection metadata as the provider functions take it (a JSON column may hold anything). */
export function asRecord(value: unknown): Record<string, unknown> {
  return value && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function assertNever(value: never): never {
  throw new Error(`unhandled refresh result: ${JSON.stringify(value)}`);
}
