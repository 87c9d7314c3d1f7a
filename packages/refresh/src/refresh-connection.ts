import { randomUUID } from "node:crypto";
import { DecryptionError, type KeyRing } from "@evergreen/crypto";
import type { Connection } from "@evergreen/db";
import type { EgressClient, EgressResponse } from "@evergreen/egress";
import type { Logger, Metrics, RefreshOutcome } from "@evergreen/observability";
import {
  buildRefreshRequest,
  classifyAnswer,
  headerCredentials,
  type InsecureTokenUrls,
  isProviderId,
  PROVIDERS,
  ProviderConfigError,
  type ProviderDefinition,
} from "@evergreen/providers";
import type { Cooldown, Lease, RedisLock } from "@evergreen/redis";
import type { ClaimHeld, ConnectionStore, RefreshIntegration } from "./connection-store";
import { asRecord, cooldownScope } from "./cooldown-scope";
import { EGRESS_FAILURES } from "./egress-failures";
import { infraDependency } from "./infra-errors";
import { REFRESHABLE } from "./jobs";
import type { ParkedAnswers } from "./parked-answers";
import { commit, record } from "./record-answer";
import { doubtStage, LOST_ANSWERS, mayRotate } from "./refresh-doubt";
import type { RefreshQueues } from "./refresh-queues";
import type { SendMarks } from "./send-marks";
import {
  openAccessToken,
  openClientSecret,
  openRefreshToken,
  resealConnectionToken,
} from "./token-cipher";

/** What a refresh keeps of its claim's lease to store an answer that came late. */
const STORE_MARGIN_MS = 500;

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
  /** Whether a refresh token may have been sent under a claim its holder abandoned. */
  readonly marks: SendMarks;
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
    if (error instanceof DecryptionError) {
      deps.metrics.decryptionFailures.inc({ source: input.source });
    }
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
  // The send mark goes with them (harmless if nothing is sent); the mark it replaced is what
  // the claim statement reads of an earlier holder (see send-marks.ts).
  const holder = randomUUID();
  const [parked, cooling, renewed, earlierMark] = await Promise.all([
    deps.parked.take(connection.id),
    deps.cooldown.remainingMs(cooldownScope(integration, connection), connection.id),
    lease.extend(),
    deps.marks.claim(connection.id, connection.version, holder),
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
  if (cooling > 0) {
    return { kind: "cooling_down", retryInMs: cooling + cooldownSpreadMs(cooling, deps.random) };
  }

  if (!connection.refreshToken) {
    return record(deps, connection, integration, {
      outcome: "invalid_grant",
      errorCode: "no_refresh_token",
      message: "the connection has no refresh token; send new tokens",
    });
  }

  const definition = PROVIDERS[provider];
  if (doubtStage(connection.inDoubtSince, definition, now()) === "closed") {
    return stopInDoubt(deps, connection, integration, definition);
  }

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
  const rotates = mayRotate(definition, integration);
  const claimFrom = performance.now();
  const claimed = await deps.store.claim({
    id: connection.id,
    version: connection.version,
    leaseMs: deps.lock.ttlMs,
    holder,
    mark: earlierMark,
    rotates,
  });
  if (!claimed) return { kind: "busy", retryInMs: 1_000 };
  // The claim statement decides whether an abandoned claim of this version may have sent the
  // token, and keeps that doubt on the row (docs/adr/0016): the row as it now stands.
  const row = { ...connection, inDoubtSince: claimed.inDoubtSince };
  if (row.inDoubtSince && !connection.inDoubtSince) {
    deps.log.warn(
      { connection: connection.id, provider },
      "an earlier refresh of this version was abandoned after claiming: refresh in doubt",
    );
  }
  // Staged again at the send, not at the load: renewing the lease and claiming may take long
  // (Redis or PostgreSQL recovering from an outage), and a grace window can close meanwhile
  // (Okta's lasts 30 s). The doubt counts from its first send.
  const stage = doubtStage(row.inDoubtSince, definition, now());
  if (stage === "closed") return stopInDoubt(deps, row, integration, definition);

  // The claim holds for a lease from when PostgreSQL granted it. A process frozen while its
  // answer was on the way (SIGSTOP, a frozen VM) finds it granted on waking, maybe long
  // expired, and another process may meanwhile have found the claim run out and sent this
  // token, and had it rotated: seen under chaos, a worker paused 11 s sent 15 tokens rotated
  // a second before. Sent only while the claim outlives the answer's wait and a timeout to
  // store it; otherwise not sent, and the claim given back (docs/adr/0016). Checked again
  // after marking the send, the last wait before it.
  const late = () => performance.now() - claimFrom > deps.lock.ttlMs - 2 * settings.timeoutMs;
  if (late()) return giveBackLateClaim(deps, row, claimed);

  // Marked sent before the request goes: a holder that dies after this leaves the version
  // in doubt; one that dies before it leaves it claimed, and the next holder sends.
  if (!(await markSent(deps, row, claimed, holder))) {
    return { kind: "busy", retryInMs: 1_000 };
  }
  if (late()) return giveBackLateClaim(deps, row, claimed);
  const sentAt = now();
  const started = performance.now();
  // The egress client's default size limit, 64 KiB, is the bound SPEC §2 sets on token answers.
  // Woken from a freeze shorter than the lease, it waits longer for the answer (most often
  // already in the socket), but not past the claim's lease less the time to store it: then
  // another process may take the row over.
  const answer = await deps.egress.send(request, {
    timeoutMs: settings.timeoutMs,
    notAfter: claimFrom + deps.lock.ttlMs - STORE_MARGIN_MS,
  });
  deps.metrics.refreshDuration.observe({ provider }, (performance.now() - started) / 1000);
  // An answer that may have spent the token, and could not be stored, is parked (a success)
  // or leaves the version in doubt; any other leaves the token as it was, and says so.
  const unspent = (error: unknown) =>
    deps.marks.withdraw(connection.id, connection.version, holder).then(
      () => Promise.reject(error),
      () => Promise.reject(error),
    );
  if ("failure" in answer) {
    // A rotating provider may have rotated the token whose answer we lost: in doubt.
    const lost = rotates && LOST_ANSWERS.has(answer.failure);
    const failed = record(deps, row, integration, EGRESS_FAILURES[answer.failure], {
      definition,
      stage,
      opensAt: lost ? sentAt : null,
    });
    return lost ? failed : failed.catch(unspent);
  }
  const result = classifyAnswer(provider, answer, now(), {
    fallbackLifetimeSeconds: integration.accessTokenLifetimeSeconds,
    secrets: () => [
      refreshToken,
      clientSecret,
      ...headerCredentials(request),
      openAccessToken(keyRing, connection.id, connection.accessToken),
    ],
  });
  // A 2xx JSON answer we could read no token from (cut short, no access_token): the token
  // endpoint took the refresh, and a rotating one has rotated the token we hold; only its
  // answer is lost, as with a timeout. Sent again, the rotated-away token would revoke the
  // grant. A page that is no JSON (a proxy's or a firewall's HTML) never reached it.
  const unreadable =
    result.outcome === "unknown" &&
    answer.status >= 200 &&
    answer.status < 300 &&
    looksLikeJson(answer);
  const recorded = record(deps, row, integration, result, {
    definition,
    stage,
    opensAt: rotates && unreadable ? sentAt : null,
  });
  // A refused token is dead either way: not offered again as one never sent.
  const spentOrDead = result.outcome === "success" || result.outcome === "invalid_grant";
  const run = await (spentOrDead || unreadable ? recorded : recorded.catch(unspent));
  if (result.outcome === "success" && definition.rotatesRefreshToken === "learned") {
    const rotated = result.refreshToken !== null && result.refreshToken !== refreshToken;
    // Best effort: the answer is stored, and the next success teaches the same.
    await learnRotation(deps, integration, rotated).catch((err: unknown) =>
      deps.log.warn({ err, integration: integration.key }, "could not record rotation"),
    );
  }
  return run;
}

function looksLikeJson({ headers, body }: { headers: EgressResponse["headers"]; body: string }) {
  const type = headers["content-type"];
  return (typeof type === "string" && /json/i.test(type)) || body.trimStart().startsWith("{");
}

/**
 * A claim that arrived (or a send mark that came back) too late to send under: given back,
 * so that the next try does not take it for a holder that may have sent the token (a no-op
 * when another process found it run out meanwhile, and is in doubt).
 */
async function giveBackLateClaim(
  deps: RefreshDeps,
  connection: Connection,
  claimed: ClaimHeld,
): Promise<RefreshRun> {
  deps.log.warn({ connection: connection.id }, "claim granted too late to send under it; not sent");
  await deps.store.releaseClaim({ id: connection.id, version: connection.version }, claimed);
  return { kind: "busy", retryInMs: 1_000 };
}

/**
 * Marks the version sent by `holder`; false when another holder took the mark over (or Redis
 * lost it), and then the claim is given back unused. A mark that cannot be written gives the
 * claim back too before the error goes up: left, it would read as abandoned after a send.
 */
async function markSent(
  deps: RefreshDeps,
  connection: Connection,
  claimed: ClaimHeld,
  holder: string,
): Promise<boolean> {
  const fence = { id: connection.id, version: connection.version };
  let marked: boolean;
  try {
    marked = await deps.marks.send(connection.id, connection.version, holder);
  } catch (error) {
    await deps.store.releaseClaim(fence, claimed).catch(() => undefined);
    throw error;
  }
  if (!marked) await deps.store.releaseClaim(fence, claimed);
  return marked;
}

/**
 * The generic definition cannot know whether a server rotates refresh tokens: its answers
 * tell (a new refresh token in a refresh answer), and the integration keeps what they showed,
 * so that a lost answer at a server seen rotating puts the refresh in doubt (docs/adr/0016).
 * Once rotation is seen it stays: a server may skip rotating on some answers.
 */
async function learnRotation(
  deps: RefreshDeps,
  integration: RefreshIntegration,
  rotated: boolean,
): Promise<void> {
  // Learned even while the operator's declaration wins: taken away, it leaves what answers
  // showed, not a rotating server taken for one that does not rotate.
  const known = integration.refreshTokensRotate;
  if (known === true || known === rotated) return;
  await deps.store.noteRotation(integration, rotated);
}

/**
 * A refresh in doubt with no reuse grace (left): the stored token may have been rotated away,
 * and sending it again could revoke the grant, so the connection stops without a request and
 * needs authorizing again (docs/adr/0016). The row says since when.
 */
function stopInDoubt(
  deps: RefreshDeps,
  connection: Connection,
  integration: RefreshIntegration,
  definition: ProviderDefinition,
): Promise<RefreshRun> {
  return record(
    deps,
    connection,
    integration,
    { outcome: "transient", errorCode: "in_doubt", message: "not sent: refresh in doubt" },
    { definition, stage: "closed", opensAt: null },
  );
}

/**
 * Every job that meets a cooldown goes back to wait for its end. Without a spread they all
 * woke in the same millisecond and sent the provider that had just rate-limited us a burst
 * of every refresh held back meanwhile; spread over a fifth of the wait (1 s to 60 s).
 */
function cooldownSpreadMs(coolingMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(60_000, Math.max(1_000, coolingMs / 5)));
}
