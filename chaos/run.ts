import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { generateEncryptionKey } from "@evergreen/crypto";
import { createDatabase } from "@evergreen/db";
import { startMockProvider } from "@evergreen/providers/testing";
import { createRedis } from "@evergreen/redis";
import { createRefreshQueue, REFRESHABLE, refreshJobId } from "@evergreen/refresh";
import { findPostgresBin, PrivateCluster } from "./cluster";
import { ChaosDatabase, type ConnectionRow } from "./database";
import { type Fault, type FaultContext, faultCatalog, GRANT_FAULTS } from "./faults";
import { Fleet } from "./fleet";
import {
  answerLossSpans,
  judge,
  judgeServedTokens,
  judgeServerErrors,
  type Verdict,
} from "./invariants";
import { Monitor } from "./monitor";
import { ROTATING_CLIENT_ID, registerPopulation } from "./population";
import { Random } from "./random";
import { readTokens } from "./readers";
import { renderReport } from "./report";
import { StallWatch } from "./stall-watch";
import type { FaultRecord } from "./timeline";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface ChaosOptions {
  /** How long faults are injected. */
  readonly minutes: number;
  readonly seed: number;
  /** @defaultValue 3000 */
  readonly connections?: number;
  /**
   * First of the ports the run takes: PostgreSQL, Redis (+1) and the apps (+10 to +16).
   * @defaultValue 15400
   */
  readonly portBase?: number;
  /** How the run was started, for the report. */
  readonly command: string;
  readonly log?: (line: string) => void;
  /** Where to write every app's log lines (JSON lines, with the process's name), to read a failure. */
  readonly appLogFile?: string;
  /** Aborting ends the fault phase early; everything is still cleaned up. */
  readonly signal?: AbortSignal;
}

export interface ChaosResult {
  readonly holds: boolean;
  readonly verdicts: readonly Verdict[];
  readonly report: string;
}

/** Short intervals so that faults matter against 50-120 s tokens. */
const APP_SETTINGS = {
  REFRESH_TIMEOUT_MS: "2000",
  REFRESH_BUFFER_SECONDS: "15",
  RECONCILE_INTERVAL_SECONDS: "5",
  RETRY_BASE_DELAY_MS: "500",
  RETRY_MAX_DELAY_MS: "5000",
  WORKER_CONCURRENCY: "50",
} as const;
const REFRESH_TIMEOUT_MS = Number(APP_SETTINGS.REFRESH_TIMEOUT_MS);
const SWEEP_MS = Number(APP_SETTINGS.RECONCILE_INTERVAL_SECONDS) * 1000;
/**
 * How long after a fault ends an expiry is still excused: a sweep (5 s) re-adds lost jobs,
 * a stalled job returns after the lease (6 s) plus BullMQ's stall check (6 s), a retry
 * waits at most RETRY_MAX_DELAY_MS (5 s), a 429 cooldown at most 4 s and its spread 1 s.
 * A token whose refresh was due during the fault expires at most the buffer (15 s) after
 * its end; 25 s covers that with the backlog a fault leaves behind.
 */
const RECOVERY_BOUND_MS = 25_000;
/** Lifetimes from 50 s: SPEC's 30 s minimum between refreshes plus the 15 s buffer. */
const LIFETIME_SECONDS = [50, 120] as const;

/** Runs the suite: setup, faults, quiet, judgement. Everything it started is stopped. */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const random = new Random(options.seed);
  const portBase = options.portBase ?? 15400;
  const connections = options.connections ?? 3000;
  const startedAt = new Date();
  const loadBefore = loadavg();
  const cleanups: (() => Promise<void>)[] = [];
  const phase = new AbortController();
  const onAbort = () => phase.abort();
  options.signal?.addEventListener("abort", onAbort);
  try {
    log(
      `chaos: seed ${options.seed}, ${options.minutes} min of faults, ${connections} connections`,
    );
    const cluster = await PrivateCluster.create({
      pgBin: await findPostgresBin(),
      pgPort: portBase,
      redisPort: portBase + 1,
    });
    cleanups.push(() => cluster.destroy());
    const databaseUrl = cluster.postgres.url("evergreen");
    await run(process.execPath, ["--import", "tsx", "packages/db/src/migrate-cli.ts"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", DATABASE_URL: databaseUrl },
    });

    const rotating = await startMockProvider({ clientId: ROTATING_CLIENT_ID });
    const stable = await startMockProvider();
    cleanups.push(
      () => rotating.close(),
      () => stable.close(),
    );

    const apiKey = `chaos-${randomBytes(16).toString("hex")}`;
    const fleet = new Fleet(
      {
        NODE_ENV: "test",
        DATABASE_URL: databaseUrl,
        REDIS_URL: cluster.redis.url,
        ENCRYPTION_KEYS: generateEncryptionKey("chaos"),
        API_KEYS: apiKey,
        ALLOW_INSECURE_TOKEN_URLS: "true",
        AUDIT_LOG: join(cluster.dir, "audit.log"),
        LOG_LEVEL: "warn",
        ...APP_SETTINGS,
      },
      portBase + 10,
    );
    cleanups.push(() => fleet.stopAll());
    await fleet.startAll(180_000);
    log("chaos: 7 apps ready");

    const database = createDatabase({ url: databaseUrl, poolSize: 4 });
    cleanups.push(() => database.close());
    const db = new ChaosDatabase(database.pool);
    const members = await registerPopulation({
      apiUrls: fleet.slotsOf("api").map((slot) => `http://127.0.0.1:${slot.port}`),
      apiKey,
      count: connections,
      lifetimeSeconds: LIFETIME_SECONDS,
      rotating,
      stable,
      random,
    });
    log(`chaos: ${members.length} connections registered`);

    const context: FaultContext = {
      fleet,
      cluster,
      rotating,
      stable,
      members,
      random,
      refreshTimeoutMs: REFRESH_TIMEOUT_MS,
      leaseMs: 3 * REFRESH_TIMEOUT_MS,
      revokedGrants: new Set(),
      droppedGrants: new Set(),
      busy: new Set(),
    };
    const catalog = faultCatalog((ids) => db.allNeedReauth(ids));
    const records: FaultRecord[] = [];
    const monitor = new Monitor(db, records);
    const watching = new AbortController();
    const monitoring = monitor.run(watching.signal);
    const reading = readTokens(fleet, members, apiKey, random, watching.signal);

    const stallWatch = new StallWatch(REFRESH_TIMEOUT_MS / 2, log);
    stallWatch.start();
    cleanups.push(async () => stallWatch.stop());
    const ends = await injectFaults(context, catalog, records, options.minutes, phase.signal, log);
    await Promise.all(ends);
    const lastEnd = Math.max(...records.map((record) => record.endedAt ?? 0));
    log("chaos: faults over, waiting for recovery");
    // Stopped early (Ctrl-C): judge what was seen without waiting for the system to settle.
    if (!phase.signal.aborted) await quiet(monitor, records, lastEnd);
    watching.abort();
    await monitoring;
    const readers = await reading;
    const endedAt = Date.now();

    const withoutJob = await connectionsWithoutJob(cluster.redis.url, db);
    // The apps keep refreshing: a refresh delivered between reading the rows and judging
    // would count as delivered and never stored. Every provider answers 429 (no attempt
    // spent, nothing in doubt) while those in flight are stored, then both sides are read.
    for (const provider of [rotating, stable]) {
      provider.standingAnswer = { status: 429, error: "rate_limited", retryAfter: "60" };
    }
    await delay(REFRESH_TIMEOUT_MS + 1_000);
    const rows = await db.connections();
    const evidence = {
      records,
      members,
      providers: [rotating, stable],
      rows,
      withoutJob,
      revokedGrants: context.revokedGrants,
      droppedGrants: context.droppedGrants,
      everInDoubt: await db.everInDoubt(),
      badTokens: readers.invalid,
      recoveryBoundMs: RECOVERY_BOUND_MS,
      endedAt,
    };
    const verdicts = [
      ...judge(evidence, answerLossSpans(records, REFRESH_TIMEOUT_MS, stallWatch.stalls)),
      judgeServedTokens(evidence, readers.served),
      judgeServerErrors(readers.serverErrors, readers.requests),
    ];
    const crashed = fleet.crashed();
    if (crashed.length > 0) {
      verdicts.push({
        name: "apps that exited on their own",
        holds: false,
        value: String(crashed.length),
        details: crashed,
      });
    }
    const report = renderReport({
      command: options.command,
      seed: options.seed,
      startedAt,
      faultMinutes: options.minutes,
      wallSeconds: (endedAt - startedAt.getTime()) / 1000,
      connections: members.length,
      settings: APP_SETTINGS,
      recoveryBoundSeconds: RECOVERY_BOUND_MS / 1000,
      machine: machine(loadBefore),
      kinds: catalog.map((fault) => fault.kind),
      records,
      verdicts,
      monitor: monitor.figures,
      readers,
      statuses: countStatuses(rows),
      errorLines: fleet.errorLines(),
    });
    if (options.appLogFile) await writeFile(options.appLogFile, fleet.logLines());
    return { holds: verdicts.every((verdict) => verdict.holds), verdicts, report };
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => log(`chaos: cleanup failed: ${String(error)}`));
    }
  }
}

/** Faults come in storms, each followed by a calm as long as the recovery bound and more. */
const STORM_MS = 40_000;
const CALM_MS = 50_000;

/**
 * Storms of 40 s, in which a fault starts every 1.5-4 s, overlapping whatever still runs, and
 * calms of 50 s without new faults: past the recovery bound, a calm is where an expired
 * token counts. The catalog is dealt in seeded shuffles, so every type comes round once
 * per deal; a type whose target is taken (Redis already down) waits for a later turn.
 */
async function injectFaults(
  context: FaultContext,
  catalog: readonly Fault[],
  records: FaultRecord[],
  minutes: number,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<Promise<void>[]> {
  const begin = Date.now();
  const until = begin + minutes * 60_000;
  const ends: Promise<void>[] = [];
  let deal: Fault[] = [];
  while (Date.now() < until && !signal.aborted) {
    const intoCycle = (Date.now() - begin) % (STORM_MS + CALM_MS);
    const wait =
      intoCycle < STORM_MS ? context.random.between(2, 6) * 1000 : STORM_MS + CALM_MS - intoCycle;
    await delay(wait, undefined, { signal }).catch(() => {});
    if (signal.aborted || Date.now() >= until) break;
    if (deal.length === 0) deal = context.random.shuffle(catalog);
    for (const [index, fault] of deal.entries()) {
      const started = fault.start(context);
      if (!started) continue;
      deal.splice(index, 1);
      const record: FaultRecord = {
        kind: fault.kind,
        target: started.target,
        startedAt: Date.now(),
        endedAt: null,
        recoveredAt: null,
        losesAnswers: null,
        healthy: started.healthy ?? (async () => true),
      };
      records.push(record);
      log(`chaos: ${new Date(record.startedAt).toISOString()} ${fault.kind}: ${started.target}`);
      ends.push(
        started.end.then(
          () => {
            record.endedAt = Date.now();
            record.losesAnswers = started.losesAnswers?.() ?? null;
          },
          (error: unknown) => {
            record.endedAt = Date.now();
            log(`chaos: ${fault.kind} failed to undo: ${String(error)}`);
          },
        ),
      );
      break;
    }
  }
  return ends;
}

/**
 * After the last fault: at least two sweeps, then until every system fault has recovered
 * (revoked grants show up at their own next refresh, which may come later), at most 2 min.
 */
async function quiet(monitor: Monitor, records: readonly FaultRecord[], lastEnd: number) {
  const deadline = lastEnd + 120_000;
  const systemRecovered = () =>
    records.every((record) => GRANT_FAULTS.has(record.kind) || record.recoveredAt !== null);
  while (Date.now() < deadline) {
    if (Date.now() >= lastEnd + 2 * SWEEP_MS && systemRecovered() && monitor.lastOverdue === 0) {
      return;
    }
    await delay(1_000);
  }
}

/**
 * Refreshable connections whose current version has no job. A connection without one is
 * looked at again after two sweeps, with its row read again: it may have been between a
 * finished job and its next one.
 */
async function connectionsWithoutJob(redisUrl: string, db: ChaosDatabase): Promise<string[]> {
  const redis = createRedis(redisUrl, "producer", "chaos-check");
  const queue = createRefreshQueue(redis);
  try {
    const missing = async (only?: ReadonlySet<string>) => {
      const rows = [...(await db.connections()).values()].filter(
        (row) =>
          (REFRESHABLE as readonly string[]).includes(row.status) && (!only || only.has(row.id)),
      );
      const jobs = await Promise.all(
        rows.map((row) =>
          queue.getJob(refreshJobId({ connectionId: row.id, version: row.version })),
        ),
      );
      return new Set(rows.filter((_, index) => !jobs[index]).map((row) => row.id));
    };
    const first = await missing();
    if (first.size === 0) return [];
    await delay(SWEEP_MS * 2);
    return [...(await missing(first))];
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

function countStatuses(rows: ReadonlyMap<string, ConnectionRow>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const row of rows.values()) counts[row.status] = (counts[row.status] ?? 0) + 1;
  return counts;
}

function machine(loadBefore: number[]): string {
  const load = (values: number[]) => values.map((value) => value.toFixed(2)).join(" ");
  return `${cpus().length} cores; load average ${load(loadBefore)} at the start, ${load(loadavg())} at the end`;
}
