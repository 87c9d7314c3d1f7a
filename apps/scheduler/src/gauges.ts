import type { PrismaClient } from "@evergreen/db";
import type { SchedulerMetrics } from "@evergreen/observability";
import type { Cooldown } from "@evergreen/redis";
import {
  countCiphertexts,
  countOverdue,
  type ParkedAnswers,
  type RefreshQueues,
} from "@evergreen/refresh";

export interface GaugeDeps {
  readonly prisma: PrismaClient;
  readonly queue: RefreshQueues;
  readonly cooldown: Cooldown;
  readonly parked: ParkedAnswers;
  readonly metrics: SchedulerMetrics;
}

/** Refresh tokens that die within this are reported, so users re-consent in time. */
const REFRESH_TOKEN_HORIZON_DAYS = 7;

/**
 * Refresh jobs only ever sit in these states. None can be `failed`: the worker turns every
 * exception into a delayed retry (moveToDelayed + DelayedError), and the one job it fails
 * for good (a malformed payload, UnrecoverableError) is removed at once (removeOnFail:
 * count 0, see WORKER_JOB_RETENTION), so a `failed` series would always read 0. Jobs carry
 * no priority, so `prioritized` is always empty too.
 */
const JOB_STATES = ["delayed", "wait", "active"] as const;

interface CountRow {
  readonly integrationId: string;
  readonly count: bigint;
}

/**
 * Publishes the scheduler's gauges. Every PostgreSQL query is a range scan of one index on
 * connections (prisma/schema.prisma: [status, nextRefreshAt], [status, expiresAt],
 * [status, refreshTokenExpiresAt]) over the rows it counts, which a healthy deployment
 * keeps few; only `evergreen_connections` and `evergreen_ciphertexts` (a scan of every sealed
 * table, see README's Custody for its cost) count every row. Every integration gets a
 * series, 0 when nothing is wrong with it, so that alerts see the problem start and end.
 */
export async function publishGauges({
  prisma,
  queue,
  cooldown,
  parked,
  metrics,
}: GaugeDeps): Promise<void> {
  const [
    integrations,
    byProviderStatus,
    overdue,
    expiredActive,
    expiring,
    jobCounts,
    workers,
    parkedCount,
    ciphertexts,
    revocations,
  ] = await Promise.all([
    prisma.integration.findMany({ select: { id: true, key: true } }),
    prisma.$queryRaw<{ provider: string; status: string; count: bigint }[]>`
      SELECT i.provider, c.status::text AS status, count(*) AS count
        FROM connections c JOIN integrations i ON i.id = c."integrationId"
       GROUP BY 1, 2`,
    countOverdue(prisma),
    // Without a refresh token nothing can be refreshed: such a connection is `active` past
    // its expiry only until its job (due at the expiry) stops it, and is no failure of ours.
    prisma.$queryRaw<CountRow[]>`
      SELECT "integrationId", count(*) AS count
        FROM connections
       WHERE status = 'active' AND "expiresAt" < now() AND "refreshToken" IS NOT NULL
       GROUP BY 1`,
    prisma.$queryRaw<CountRow[]>`
      SELECT "integrationId", count(*) AS count
        FROM connections
       WHERE status IN ('active', 'expired')
         AND "refreshTokenExpiresAt" < now() + make_interval(days => ${REFRESH_TOKEN_HORIZON_DAYS}::int)
       GROUP BY 1`,
    Promise.all(queue.shards.map((shard) => shard.getJobCounts(...JOB_STATES))),
    Promise.all(queue.shards.map((shard) => shard.getWorkersCount())),
    parked.count(),
    countCiphertexts(prisma),
    // A mass delete queues a revocation per connection: the backlog, and how long it waits.
    prisma.$queryRaw<{ count: bigint; oldestSeconds: number | null }[]>`
      SELECT count(*) AS count,
             extract(epoch FROM now() - min("createdAt"))::float8 AS "oldestSeconds"
        FROM pending_revocations`,
  ]);
  // One PTTL per integration; the producer connection pipelines those sent together.
  const cooling = await Promise.all(integrations.map(({ id }) => cooldown.remainingMs(id)));

  metrics.connections.reset();
  for (const row of byProviderStatus) {
    metrics.connections.set({ provider: row.provider, status: row.status }, Number(row.count));
  }
  for (const state of JOB_STATES) {
    const total = jobCounts.reduce((sum, counts) => sum + (counts[state] ?? 0), 0);
    metrics.queueJobs.set({ state }, total);
  }
  // Every worker consumes every shard: the least-consumed shard says how many really do.
  metrics.queueWorkers.set(Math.min(...workers));
  metrics.parkedAnswers.set(parkedCount);
  metrics.revocationsPending.set(Number(revocations[0]?.count ?? 0));
  metrics.revocationsOldest.set(Math.max(0, revocations[0]?.oldestSeconds ?? 0));
  // Reset first: a retired key's series goes.
  metrics.ciphertexts.reset();
  const byKey = new Map<string, number>();
  for (const { keyId, count } of ciphertexts) byKey.set(keyId, (byKey.get(keyId) ?? 0) + count);
  for (const [keyId, count] of byKey) metrics.ciphertexts.set({ key_id: keyId }, count);
  metrics.overdueOldest.set(Math.max(0, ...overdue.map((row) => row.oldestSeconds)));

  const perIntegration = [
    [metrics.overdue, overdue],
    [metrics.expiredActive, expiredActive],
    [metrics.refreshTokensExpiring, expiring],
  ] as const;
  for (const [gauge, rows] of perIntegration) {
    const counts = new Map(rows.map((row) => [row.integrationId, Number(row.count)]));
    // Reset first: a deleted integration's series goes.
    gauge.reset();
    for (const { id, key } of integrations) gauge.set({ integration: key }, counts.get(id) ?? 0);
  }
  metrics.coolingDown.reset();
  integrations.forEach(({ key }, index) => {
    metrics.coolingDown.set({ integration: key }, (cooling[index] ?? 0) > 0 ? 1 : 0);
  });
}
