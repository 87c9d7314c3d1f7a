import type { PrismaClient } from "@evergreen/db";

/**
 * A refresh is overdue once it is this far past its `nextRefreshAt`. A due job normally
 * starts within milliseconds (SPEC §7: p99 under 250 ms), and the sweep may read a row a
 * moment before its job runs; a minute past due is a refresh that is not happening. The
 * scheduler's overdue gauges and the admin console's overview count by it.
 */
export const OVERDUE_GRACE_SECONDS = 60;

/** Overdue refreshes of one integration. */
export interface OverdueCount {
  readonly integrationId: string;
  readonly count: bigint;
  /** How far past due the oldest one is. */
  readonly oldestSeconds: number;
}

/**
 * Overdue refreshes per integration, for the scheduler's gauges and the admin console: a
 * range of the [status, nextRefreshAt] index, few rows while refreshes keep up.
 */
export function countOverdue(prisma: Pick<PrismaClient, "$queryRaw">): Promise<OverdueCount[]> {
  return prisma.$queryRaw<OverdueCount[]>`
    SELECT "integrationId", count(*) AS count,
           extract(epoch FROM now() - min("nextRefreshAt"))::float8 AS "oldestSeconds"
      FROM connections
     WHERE status IN ('active', 'expired')
       AND "nextRefreshAt" < now() - make_interval(secs => ${OVERDUE_GRACE_SECONDS}::int)
     GROUP BY 1`;
}
