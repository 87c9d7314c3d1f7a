import {
  type PrismaClient,
  type PruneEventsResult,
  pruneConnectionEvents,
  pruneConnectSessions,
  pruneWebhookEvents,
} from "@evergreen/db";
import type { Logger, SchedulerMetrics } from "@evergreen/observability";
import type { Cooldown } from "@evergreen/redis";
import {
  announceReauthSoon,
  type ParkedAnswers,
  type RefreshQueue,
  reconcileQueue,
  type ValidationDeps,
  validateDueConnections,
} from "@evergreen/refresh";
import type { Redis } from "ioredis";
import { publishGauges } from "./gauges";

export interface SweepDeps {
  readonly prisma: PrismaClient;
  readonly queue: RefreshQueue;
  readonly redis: Redis;
  readonly cooldown: Cooldown;
  readonly parked: ParkedAnswers;
  readonly metrics: SchedulerMetrics;
  readonly log: Logger;
  /** Connection and webhook events older than this are removed (EVENT_RETENTION_DAYS). */
  readonly eventRetentionDays: number;
  /** Validation at the provider, for integrations with `validateIntervalSeconds`. */
  readonly validation: ValidationDeps;
  /** `connection.reauth_soon` goes out this long before a refresh token ends (REAUTH_SOON_DAYS). */
  readonly reauthSoonDays: number;
}

/**
 * Connections validated per sweep, one at a time: with RECONCILE_INTERVAL_SECONDS at 60,
 * about 100 a minute; an integration validating more than that falls behind, visibly in
 * `lastValidatedAt`, rather than slowing the sweep that keeps refreshes on time.
 */
const VALIDATIONS_PER_SWEEP = 100;
/** Announcements per transaction; the next sweep takes the rest. */
const REAUTH_SOON_PER_SWEEP = 500;

/**
 * One sweep: make the queue match the database (add missing jobs, move mistimed ones,
 * remove those no connection wants), then publish the gauges. Sweeps are idempotent (see
 * reconcileQueue), so scheduler replicas need no leader. Only a sweep that did both counts
 * as a success: a stale `evergreen_sweep_last_success_timestamp_seconds` is what says the
 * queue is no longer being repaired.
 */
export async function sweep(deps: SweepDeps): Promise<void> {
  const { prisma, queue, redis, metrics, log } = deps;
  const started = performance.now();
  const result = await reconcileQueue(prisma, queue, redis);
  log.info({ ...result, ms: Math.round(performance.now() - started) }, "queue reconciled");
  if (result.unrecognized > 0) {
    // Something else writes to our queue (a shared prefix, a manual add): left alone.
    log.warn({ unrecognized: result.unrecognized }, "queue holds jobs that are not refresh jobs");
  }
  await publishGauges(deps);
  metrics.sweepDuration.observe((performance.now() - started) / 1000);
  metrics.sweepLastSuccess.set(Date.now() / 1000);
}

/**
 * Removes connection events and webhook events past retention, then connect sessions long
 * expired, a bounded amount of each per call (see pruneConnectionEvents). Run on every
 * sweep rather than hourly: each run then has about a minute of rows to remove, and
 * replicas that find another one pruning a table stop at once and go on to the next.
 */
async function pruneExpired({ prisma, log, eventRetentionDays }: SweepDeps): Promise<void> {
  const retentionDays = eventRetentionDays;
  const timed = async (message: string, prune: () => Promise<PruneEventsResult>) => {
    const started = performance.now();
    const result = await prune();
    log.info({ ...result, ms: Math.round(performance.now() - started) }, message);
  };
  await timed("connection events pruned", () => pruneConnectionEvents(prisma, { retentionDays }));
  await timed("webhook events pruned", () => pruneWebhookEvents(prisma, { retentionDays }));
  await timed("connect sessions pruned", () => pruneConnectSessions(prisma));
}

/**
 * Issue 11's custody chores after each sweep: announce refresh tokens ending soon, then
 * validate the connections due. Both are bounded per run and safe across replicas (SKIP
 * LOCKED), and neither touches a row's version, so no refresh is fenced out by them.
 */
async function custodyChores(deps: SweepDeps): Promise<void> {
  const { log } = deps;
  const announced = await announceReauthSoon(deps.prisma, {
    withinMs: deps.reauthSoonDays * 86_400_000,
    limit: REAUTH_SOON_PER_SWEEP,
  });
  if (announced > 0) log.info({ announced }, "reauth_soon announced");
  const started = performance.now();
  const result = await validateDueConnections(deps.validation, { limit: VALIDATIONS_PER_SWEEP });
  if (result.validated + result.failed > 0) {
    log.info({ ...result, ms: Math.round(performance.now() - started) }, "connections validated");
  }
}

/**
 * Sweeps and prunes at start and then every `intervalMs`, never two at once. Pruning
 * runs even when the sweep failed: Redis being down is no reason to let the event logs
 * grow. `stop()` waits for a run in progress.
 */
export function startSweeps(deps: SweepDeps, intervalMs: number): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const run = () => {
    running = sweep(deps)
      .catch((err: unknown) => deps.log.error({ err }, "sweep failed; retrying next interval"))
      .then(() => custodyChores(deps))
      .catch((err: unknown) =>
        deps.log.error({ err }, "validation or reauth_soon failed; retrying next interval"),
      )
      .then(() => pruneExpired(deps))
      .catch((err: unknown) => deps.log.error({ err }, "pruning failed; retrying next interval"))
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
