// What every benchmark part shares: its result shape, env sizes, Redis databases, worker
// processes and percentiles.
import { createServer } from "node:net";
import { cpus } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import { enqueueRefresh } from "@evergreen/refresh";
import type { RefreshHarness } from "@evergreen/refresh/testing";
import type { Redis } from "ioredis";
import { type AppProcess, startApp } from "../test/support/app-process";

/** What one part prints: its conditions and figures, then one line per SPEC §7 target. */
export interface BenchResult {
  readonly title: string;
  readonly table: Readonly<Record<string, number | string>>;
  readonly lines: readonly string[];
}

/**
 * Redis databases of the benchmark, apart from the tests'. Each part flushes its database
 * before and after: they hold nothing else.
 */
export const BENCH_REDIS_DB = { worker: 8, memory: 9, rebuild: 10, scaling: 15 } as const;

export const CORES = cpus().length;

/** An integer >= `min` from the environment, else `fallback`; anything else stops the run. */
export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw.replaceAll("_", ""));
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Nearest-rank percentile of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

export function verdict(met: boolean): string {
  return met ? "met" : "MISSED";
}

/** `INFO <section>` as a map of its fields. */
export async function redisInfo(redis: Redis, section: string): Promise<Map<string, string>> {
  const text = await redis.info(section);
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** A port free right now on 127.0.0.1, for a child's METRICS_PORT. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP port");
  return address.port;
}

/** Where a part learns how far the refreshes it waits for have come. */
export interface RefreshProgress {
  /** Refresh requests the mock provider has answered (it counts them in memory). */
  readonly answered: () => number | Promise<number>;
  /** Refreshes stored in PostgreSQL. */
  readonly stored: () => Promise<number>;
}

/**
 * Waits until `target` refreshes are stored, and answers how many are. The provider is asked
 * until it has answered that many, and PostgreSQL only then, for the stores still on their
 * way: counting 20,000 rows ten times a second took 15-20 ms of PostgreSQL's CPU each time,
 * a fifth of a core taken from the system being measured on this 2-core box. PostgreSQL is
 * still asked every 2 s meanwhile, so a provider count that falls short (requests answered
 * before `answered` started counting) cannot stall the wait.
 */
export async function waitForStored(
  progress: RefreshProgress,
  target: number,
  deadline = Date.now() + 600_000,
): Promise<number> {
  let checkedAt = Date.now();
  while ((await progress.answered()) < target && Date.now() < deadline) {
    await delay(50);
    if (Date.now() - checkedAt >= 2_000) {
      checkedAt = Date.now();
      if ((await progress.stored()) >= target) break;
    }
  }
  for (;;) {
    const stored = await progress.stored();
    if (stored >= target) return stored;
    if (Date.now() > deadline) throw new Error(`only ${stored} of ${target} refreshed in time`);
    await delay(50);
  }
}

export interface BenchWorker {
  readonly app: AppProcess;
  /** Base URL of its ops server (`/metrics`, `/readyz`). */
  readonly opsUrl: string;
  stop(): Promise<void>;
}

/**
 * One real worker process (`apps/worker/src/main.ts`) at LOG_LEVEL warn, since it logs
 * every refresh at info; ready once its `/readyz` answers 200.
 */
export async function startBenchWorker(env: {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly encryptionKeys: string;
  readonly concurrency: number;
  /** More environment for the worker (REFRESH_TIMEOUT_MS, ...). */
  readonly env?: Readonly<Record<string, string>>;
}): Promise<BenchWorker> {
  const port = await freePort();
  // A CPU profile of each worker, written when it stops (the place to start when a figure
  // moves: docs/scaling.md).
  const profileDir = process.env.BENCH_CPU_PROFILE_DIR;
  const nodeFlags = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const app = startApp(
    "worker",
    {
      NODE_ENV: "production",
      DATABASE_URL: env.databaseUrl,
      REDIS_URL: env.redisUrl,
      ENCRYPTION_KEYS: env.encryptionKeys,
      METRICS_PORT: String(port),
      ALLOW_INSECURE_TOKEN_URLS: "true",
      // Production refuses loopback; the mock provider listens on it.
      EGRESS_ALLOWLIST: "127.0.0.1",
      WORKER_CONCURRENCY: String(env.concurrency),
      LOG_LEVEL: "warn",
      ...env.env,
    },
    nodeFlags,
  );
  const opsUrl = `http://127.0.0.1:${port}`;
  let exitCode: number | null | undefined;
  void app.exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`worker exited (${exitCode}):\n${app.stderr()}`);
    const ready = await fetch(`${opsUrl}/readyz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`worker not ready after 60 s:\n${app.stderr()}`);
    await delay(100);
  }
  return {
    app,
    opsUrl,
    async stop() {
      if (exitCode === undefined) app.child.kill("SIGTERM");
      await app.exited;
    },
  };
}

/** A connection a bench part added, and its grant at the mock provider. */
export interface AddedConnection {
  readonly connectionId: string;
  readonly grantId: string;
}

/** Adds `count` connections at the harness's provider, each on a grant that rotates. */
export async function addRotatingConnections(
  h: RefreshHarness,
  count: number,
): Promise<AddedConnection[]> {
  const ids: AddedConnection[] = [];
  for (let start = 0; start < count; start += 200) {
    const added = await Promise.all(
      Array.from({ length: Math.min(200, count - start) }, () => h.addConnection({ rotate: true })),
    );
    ids.push(
      ...added.map(({ connection, grant }) => ({
        connectionId: connection.id,
        grantId: grant.grantId,
      })),
    );
  }
  return ids;
}

/** Makes the first refresh of each connection due now, a thousand enqueued at a time. */
export async function makeDueNow(
  h: RefreshHarness,
  added: readonly AddedConnection[],
): Promise<void> {
  const now = new Date();
  for (let start = 0; start < added.length; start += 1_000) {
    await Promise.all(
      added
        .slice(start, start + 1_000)
        .map(({ connectionId }) =>
          enqueueRefresh(h.queues, { connectionId, version: 0 }, now, now),
        ),
    );
  }
}
