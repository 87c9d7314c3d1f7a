import type { ConnectionStatus, PrismaClient } from "@evergreen/db";
import { countOverdue } from "@evergreen/refresh";
import { type Html, html } from "./html";
import { when } from "./layout";

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
  /** Counts older than this are served once more while new ones are taken. @defaultValue 30000 */
  readonly maxAgeMs?: number;
  /**
   * How long a page waits for new counts before it renders with the last ones, or
   * without any (its script fills them in). @defaultValue 100
   */
  readonly firstWaitMs?: number;
  /** Told when taking counts in the background failed (the old ones stay). */
  readonly onError: (error: unknown) => void;
}

const HOUR_MS = 3_600_000;

/**
 * The overview's counts that need every row: connections per integration and status,
 * overdue refreshes, refresh outcomes of the last hour. Counting a million connections
 * takes 0.5 to 1.6 s on a busy two-core box, several times the page's 200 ms budget, so
 * pages wait `firstWaitMs` at most for a count: past that they show the last counts, with
 * their age, while new ones are taken (stale while revalidate). Counts are taken only
 * while someone looks: an api whose console nobody opens never runs these queries.
 * Design: docs/adr/0021.
 */
export class FleetStats {
  readonly #prisma: PrismaClient;
  readonly #maxAgeMs: number;
  readonly #firstWaitMs: number;
  readonly #onError: (error: unknown) => void;
  #last: FleetCounts | undefined;
  #taking: Promise<FleetCounts> | undefined;

  constructor(prisma: PrismaClient, options: FleetStatsOptions) {
    this.#prisma = prisma;
    this.#maxAgeMs = options.maxAgeMs ?? 30_000;
    this.#firstWaitMs = options.firstWaitMs ?? 100;
    this.#onError = options.onError;
  }

  /**
   * Counts no older than `maxAgeMs`, else new ones if they are taken within `firstWaitMs`
   * (a small fleet's are), else the last ones (older, the page says how old) while the
   * new ones are taken; undefined while the first ones are still being taken.
   */
  async read(): Promise<FleetCounts | undefined> {
    const last = this.#last;
    if (last && Date.now() - last.at.getTime() <= this.#maxAgeMs) return last;
    const taking = this.#take();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<FleetCounts | undefined>((resolve) => {
      timer = setTimeout(() => resolve(last), this.#firstWaitMs);
    });
    return Promise.race([taking.catch(() => last), timeout]).finally(() => clearTimeout(timer));
  }

  /** Single flight: one count at a time per process; a failure is reported, not thrown. */
  #take(): Promise<FleetCounts> {
    if (!this.#taking) {
      const taking = countFleet(this.#prisma)
        .then((counts) => {
          this.#last = counts;
          return counts;
        })
        .finally(() => {
          this.#taking = undefined;
        });
      taking.catch(this.#onError);
      this.#taking = taking;
    }
    return this.#taking;
  }
}

/** Says how old the counts are, or that the first ones are still being taken. */
export function countsNote(fleet: FleetCounts | undefined, now = new Date()): Html {
  return fleet
    ? html`<p class="muted" id="counts-note" data-live-region>Counts as of ${when(fleet.at, now)}, taken in ${Math.round(fleet.tookMs)} ms; taken again every 30 s while the console is open.</p>`
    : html`<p class="notice" id="counts-note" data-live-region role="status">Counting connections… the counts below fill in within a few seconds.</p>`;
}

async function countFleet(prisma: PrismaClient): Promise<FleetCounts> {
  const started = performance.now();
  const at = new Date();
  const since = new Date(at.getTime() - HOUR_MS);
  // One query after another on one connection, without parallel workers: the count may
  // take a second longer, but it keeps a core free for the pages (and the refresh path)
  // instead of taking every core of a small box at once.
  const [statuses, overdue, refreshes] = await prisma.$transaction(
    async (tx) => {
      await tx.$executeRaw`SET LOCAL max_parallel_workers_per_gather = 0`;
      const statuses = await tx.$queryRaw<
        { integrationId: string; status: ConnectionStatus; count: bigint }[]
      >`SELECT "integrationId", status, count(*) AS count FROM connections GROUP BY 1, 2`;
      const overdue = await countOverdue(tx);
      return [statuses, overdue, await refreshOutcomesSince(tx, since)] as const;
    },
    { timeout: 60_000 },
  );
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

/** A client or a transaction: what the counts need of either. */
type Queries = Pick<PrismaClient, "$queryRaw">;

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
async function refreshOutcomesSince(prisma: Queries, since: Date) {
  const first = await firstEventIdSince(prisma, since);
  if (first === null) return [];
  return prisma.$queryRaw<{ integrationId: string; outcome: string; count: bigint }[]>`
    SELECT "integrationId", outcome, count(*) AS count
      FROM connection_events
     WHERE id >= ${first} AND "createdAt" >= ${since}
       AND type IN ('refreshed', 'refresh_failed', 'needs_reauth') AND outcome IS NOT NULL
     GROUP BY 1, 2`;
}

async function firstEventIdSince(prisma: Queries, since: Date): Promise<bigint | null> {
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
