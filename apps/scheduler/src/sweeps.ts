import { type PrismaClient, pruneConnectionEvents } from "@evergreen/db";
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
  /** Connection events older than this are removed (EVENT_RETENTION_DAYS). */
  readonly eventRetentionDays: number;
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
 * Removes connection events past retention, a bounded amount per call (see
 * pruneConnectionEvents). Run on every sweep rather than hourly: each run then has about a
 * minute of events to remove, and replicas that find another one pruning stop at once.
 */
async function pruneEvents({ prisma, log, eventRetentionDays }: SweepDeps): Promise<void> {
  const started = performance.now();
  const result = await pruneConnectionEvents(prisma, { retentionDays: eventRetentionDays });
  log.info({ ...result, ms: Math.round(performance.now() - started) }, "connection events pruned");
}

/**
 * Sweeps and prunes at start and then every `intervalMs`, never two at once. Pruning
 * runs even when the sweep failed: Redis being down is no reason to let the event log
 * grow. `stop()` waits for a run in progress.
 */
export function startSweeps(deps: SweepDeps, intervalMs: number): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const run = () => {
    running = sweep(deps)
      .catch((err: unknown) => deps.log.error({ err }, "sweep failed; retrying next interval"))
      .then(() => pruneEvents(deps))
      .catch((err: unknown) =>
        deps.log.error({ err }, "event pruning failed; retrying next interval"),
      )
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
