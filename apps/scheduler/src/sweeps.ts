import type { PrismaClient } from "@evergreen/db";
import type { Logger, Metrics } from "@evergreen/observability";
import { type RefreshJobPayload, reconcileQueue } from "@evergreen/refresh";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";

export interface SweepDeps {
  readonly prisma: PrismaClient;
  readonly queue: Queue<RefreshJobPayload>;
  readonly redis: Redis;
  readonly metrics: Metrics;
  readonly log: Logger;
}

const JOB_STATES = ["delayed", "wait", "active", "failed"] as const;

/**
 * One sweep: make the queue match the database (add missing jobs, move mistimed ones,
 * remove those no connection wants), then publish the gauges. Sweeps are idempotent (see
 * reconcileQueue), so scheduler replicas need no leader.
 */
export async function sweep({ prisma, queue, redis, metrics, log }: SweepDeps): Promise<void> {
  const started = performance.now();
  const result = await reconcileQueue(prisma, queue, redis);
  log.info({ ...result, ms: Math.round(performance.now() - started) }, "queue reconciled");
  if (result.unrecognized > 0) {
    // Something else writes to our queue (a shared prefix, a manual add): left alone.
    log.warn({ unrecognized: result.unrecognized }, "queue holds jobs that are not refresh jobs");
  }

  const counts = await queue.getJobCounts(...JOB_STATES);
  for (const state of JOB_STATES) metrics.queueJobs.set({ state }, counts[state] ?? 0);

  const byProviderStatus = await prisma.$queryRaw<
    { provider: string; status: string; count: bigint }[]
  >`SELECT i.provider, c.status::text AS status, count(*) AS count
      FROM connections c JOIN integrations i ON i.id = c."integrationId"
     GROUP BY 1, 2`;
  metrics.connections.reset();
  for (const row of byProviderStatus) {
    metrics.connections.set({ provider: row.provider, status: row.status }, Number(row.count));
  }
}

/**
 * Sweeps at start and then every `intervalMs`, never two at once. `stop()` waits for a
 * sweep in progress.
 */
export function startSweeps(deps: SweepDeps, intervalMs: number): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const run = () => {
    running = sweep(deps)
      .catch((err: unknown) => deps.log.error({ err }, "sweep failed; retrying next interval"))
      .finally(() => {
        if (!stopped) timer = setTimeout(run, intervalMs);
      });
  };
  run();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
