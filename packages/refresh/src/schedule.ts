import {
  REFRESH_JOB,
  type RefreshJobData,
  type RefreshJobPayload,
  type RefreshQueue,
  refreshJobId,
} from "./jobs";
import type { RefreshQueues } from "./refresh-queues";

export interface RefreshTimeInput {
  /** When the access token expires; null when it never does. */
  readonly expiresAt: Date | null;
  /** When the token was issued or stored (start of its lifetime). */
  readonly issuedAt: Date;
  /** Buffer before expiry: the integration's, else REFRESH_BUFFER_SECONDS. */
  readonly bufferSeconds: number;
  /** Shortest wait after `issuedAt`: see minRefreshIntervalMs. */
  readonly minIntervalMs: number;
  /** Uniform in [0, 1); injectable for tests. @defaultValue Math.random */
  readonly random?: () => number;
  /**
   * Bulk imports: spread over this window before the buffer instead of SPEC's 0..10 % of it
   * (see importRefreshAt). @defaultValue undefined (SPEC's spread)
   */
  readonly spreadWindowMs?: number | undefined;
}

/**
 * SPEC §2: `expiresAt - buffer - spread`, spread uniform in 0..10 % of the buffer so tokens
 * issued together do not refresh together; when the lifetime is shorter than twice the
 * buffer, the buffer is half the lifetime; never sooner than `minIntervalMs` after
 * `issuedAt`. Null for tokens that never expire.
 */
export function computeNextRefreshAt({
  expiresAt,
  issuedAt,
  bufferSeconds,
  minIntervalMs,
  random = Math.random,
  spreadWindowMs,
}: RefreshTimeInput): Date | null {
  if (!expiresAt) return null;
  const lifetimeMs = Math.max(0, expiresAt.getTime() - issuedAt.getTime());
  let bufferMs = bufferSeconds * 1000;
  if (lifetimeMs < 2 * bufferMs) bufferMs = lifetimeMs / 2;
  if (spreadWindowMs !== undefined) {
    return importRefreshAt(expiresAt, issuedAt, bufferMs, minIntervalMs, spreadWindowMs, random);
  }
  const spreadMs = random() * 0.1 * bufferMs;
  const planned = Math.round(expiresAt.getTime() - bufferMs - spreadMs);
  return new Date(Math.max(planned, issuedAt.getTime() + minIntervalMs));
}

/**
 * 50,000 imported tokens that all expire at one instant would all refresh within 10 % of
 * one buffer (30 s by default): one burst at the provider. An import spreads them uniformly
 * over `windowMs` ending at `expiresAt - buffer`. Where the window would start before the
 * earliest allowed refresh (tokens that expire soon), it starts there and may reach into
 * the buffer, but never later than `expiresAt - buffer / 2`, so a refresh that fails still
 * has half the buffer for its retries.
 */
function importRefreshAt(
  expiresAt: Date,
  issuedAt: Date,
  bufferMs: number,
  minIntervalMs: number,
  windowMs: number,
  random: () => number,
): Date {
  const earliest = issuedAt.getTime() + minIntervalMs;
  const end = expiresAt.getTime() - bufferMs;
  const start = Math.max(earliest, end - windowMs);
  const stop = Math.min(expiresAt.getTime() - bufferMs / 2, Math.max(end, start + windowMs));
  return new Date(Math.round(stop <= start ? start : start + random() * (stop - start)));
}

/**
 * SPEC §2: the next proactive refresh is never sooner than max(30 s, RETRY_BASE_DELAY_MS)
 * after the last one. A provider (or an app) stating a tiny lifetime would otherwise be
 * refreshed in a loop, rotating its refresh token at full speed.
 */
export function minRefreshIntervalMs(retryBaseDelayMs: number): number {
  return Math.max(30_000, retryBaseDelayMs);
}

/**
 * The job for one connection version, due at `at`: for `queue.add` or `queue.addBulk`. Its
 * id carries the payload; its data is empty (docs/adr/0018).
 */
export function refreshJob(payload: RefreshJobPayload, at: Date, now: Date = new Date()) {
  const data: RefreshJobData = {};
  return {
    name: REFRESH_JOB,
    data,
    opts: { jobId: refreshJobId(payload), delay: Math.max(0, at.getTime() - now.getTime()) },
  };
}

/** Enqueues the delayed job for this connection version (a no-op if it already exists). */
export async function enqueueRefresh(
  /** The sharded queue, or one shard's. */
  queue: RefreshQueues | RefreshQueue,
  payload: RefreshJobPayload,
  at: Date,
  now: Date = new Date(),
): Promise<void> {
  const { name, data, opts } = refreshJob(payload, at, now);
  await queue.add(name, data, opts);
}
