import type { ConnectionStatus, PrismaClient } from "@evergreen/db";
import { OVERDUE_GRACE_SECONDS } from "@evergreen/refresh";

export const STATUSES: readonly ConnectionStatus[] = ["active", "expired", "needs_reauth", "error"];

/** One integration's numbers; absent integrations have none of anything. */
export interface IntegrationCounts {
  readonly byStatus: Readonly<Record<ConnectionStatus, number>>;
  readonly overdue: number;
  readonly oldestOverdueSeconds: number;
  /** Refresh outcomes (`success`, `transient`, ...) in the last hour. */
  readonly refreshes: Readonly<Record<string, number>>;
}

export interface FleetCounts {
  /** When the counts were taken. */
  readonly at: Date;
  /** How long taking them took. */
  readonly tookMs: number;
  /** By integration id. */
  readonly byIntegration: ReadonlyMap<string, IntegrationCounts>;
}

export interface FleetStatsOptions {
  /** Counts older than this are served once more while new ones are taken. @defaultValue 15000 */
  readonly maxAgeMs?: number;
  /** Told when taking counts in the background failed (the old ones stay). */
  readonly onError: (error: unknown) => void;
}

const HOUR_MS = 3_600_000;

/**
 * The overview's counts that need every row: connections per integration and status,
 * overdue refreshes, refresh outcomes of the last hour. Counting a million connections
 * takes about 400 ms, twice the page's budget, so the console serves the last counts and
 * takes new ones in the background once they are `maxAgeMs` old (stale while revalidate;
 * docs/adr/0014). Only the first view after a start waits for them. Counted only while
 * someone looks: an api nobody opens the console on never runs these queries.
 */
export class FleetStats {
  readonly #prisma: PrismaClient;
  readonly #maxAgeMs: number;
  readonly #onError: (error: unknown) => void;
  #last: FleetCounts | undefined;
  #taking: Promise<FleetCounts> | undefined;

  constructor(prisma: PrismaClient, options: FleetStatsOptions) {
    this.#prisma = prisma;
    this.#maxAgeMs = options.maxAgeMs ?? 15_000;
    this.#onError = options.onError;
  }

  async read(): Promise<FleetCounts> {
    const last = this.#last;
    if (!last) return this.#take();
    if (Date.now() - last.at.getTime() > this.#maxAgeMs) this.#take().catch(this.#onError);
    return last;
  }

  /** Single flight: one count at a time per process. */
  #take(): Promise<FleetCounts> {
    this.#taking ??= countFleet(this.#prisma)
      .then((counts) => {
        this.#last = counts;
        return counts;
      })
      .finally(() => {
        this.#taking = undefined;
      });
    return this.#taking;
  }
}

async function countFleet(prisma: PrismaClient): Promise<FleetCounts> {
  const started = performance.now();
  const at = new Date();
  const since = new Date(at.getTime() - HOUR_MS);
  const [statuses, overdue, refreshes] = await Promise.all([
    prisma.$queryRaw<{ integrationId: string; status: ConnectionStatus; count: bigint }[]>`
      SELECT "integrationId", status, count(*) AS count FROM connections GROUP BY 1, 2`,
    // A range of the [status, nextRefreshAt] index: few rows while refreshes keep up.
    prisma.$queryRaw<{ integrationId: string; count: bigint; oldestSeconds: number }[]>`
      SELECT "integrationId", count(*) AS count,
             extract(epoch FROM now() - min("nextRefreshAt"))::float8 AS "oldestSeconds"
        FROM connections
       WHERE status IN ('active', 'expired')
         AND "nextRefreshAt" < now() - make_interval(secs => ${OVERDUE_GRACE_SECONDS}::int)
       GROUP BY 1`,
    refreshOutcomesSince(prisma, since),
  ]);
  const byIntegration = new Map<string, MutableCounts>();
  const entry = (id: string) => {
    let counts = byIntegration.get(id);
    if (!counts) {
      counts = {
        byStatus: { active: 0, expired: 0, needs_reauth: 0, error: 0 },
        overdue: 0,
        oldestOverdueSeconds: 0,
        refreshes: {},
      };
      byIntegration.set(id, counts);
    }
    return counts;
  };
  for (const row of statuses) entry(row.integrationId).byStatus[row.status] = Number(row.count);
  for (const row of overdue) {
    const counts = entry(row.integrationId);
    counts.overdue = Number(row.count);
    counts.oldestOverdueSeconds = Math.max(0, row.oldestSeconds);
  }
  for (const row of refreshes) entry(row.integrationId).refreshes[row.outcome] = Number(row.count);
  return { at, tookMs: performance.now() - started, byIntegration };
}

interface MutableCounts {
  byStatus: Record<ConnectionStatus, number>;
  overdue: number;
  oldestOverdueSeconds: number;
  refreshes: Record<string, number>;
}

/**
 * Refresh outcomes recorded since `since`. connection_events has no index on createdAt
 * (one more index on the hottest insert path; see the event retention migration), but
 * its ids grow with createdAt: a binary search over the primary key finds the first id
 * of the hour in about 40 lookups, and the count reads only the hour's ids.
 */
async function refreshOutcomesSince(prisma: PrismaClient, since: Date) {
  const first = await firstEventIdSince(prisma, since);
  if (first === null) return [];
  return prisma.$queryRaw<{ integrationId: string; outcome: string; count: bigint }[]>`
    SELECT "integrationId", outcome, count(*) AS count
      FROM connection_events
     WHERE id >= ${first} AND "createdAt" >= ${since}
       AND type IN ('refreshed', 'refresh_failed', 'needs_reauth') AND outcome IS NOT NULL
     GROUP BY 1, 2`;
}

async function firstEventIdSince(prisma: PrismaClient, since: Date): Promise<bigint | null> {
  const [bounds] = await prisma.$queryRaw<{ lo: bigint | null; hi: bigint | null }[]>`
    SELECT min(id) AS lo, max(id) AS hi FROM connection_events`;
  if (bounds?.lo == null || bounds.hi == null) return null;
  /** Whether the first event at or after `id` is recent: false, then true, as `id` grows. */
  const recentFrom = async (id: bigint) => {
    const [row] = await prisma.$queryRaw<{ createdAt: Date }[]>`
      SELECT "createdAt" FROM connection_events WHERE id >= ${id} ORDER BY id LIMIT 1`;
    return row !== undefined && row.createdAt >= since;
  };
  if (!(await recentFrom(bounds.hi))) return null;
  let lo = bounds.lo;
  let hi = bounds.hi;
  while (lo < hi) {
    const mid = (lo + hi) / 2n;
    if (await recentFrom(mid)) hi = mid;
    else lo = mid + 1n;
  }
  return lo;
}
