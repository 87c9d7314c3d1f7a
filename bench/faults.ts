// Rotated refresh tokens reused under worker faults (SPEC §7: zero under worker crashes and
// under pauses shorter than the lock's lease). Two real worker processes refresh every
// connection once, all due at once, against the mock provider rotating every refresh token
// without reuse grace and answering after BENCH_LATENCY_MS. Two phases, each on its own
// connections: one worker paused (SIGSTOP) for BENCH_FAULT_PAUSE_MS, under the lease, then
// resumed, over and over; then one worker killed (SIGKILL) and started again, over and over.
// The provider counts every rotated-away token presented again; a refresh whose answer was
// lost with the killed process is in doubt and stops the connection (docs/adr/0016).
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { openRefreshToken, QUEUE_PREFIX } from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import {
  type AddedConnection,
  addRotatingConnections,
  BENCH_REDIS_DB,
  type BenchResult,
  type BenchWorker,
  CORES,
  envInt,
  makeDueNow,
  startBenchWorker,
  verdict,
} from "./support";

/**
 * Lease of lock and claim: 3 × this (ADR 0008), so a killed worker's jobs return soon. Not
 * shorter: on this 2-core box, loaded by two workers, PostgreSQL, Redis and the mock provider
 * answering from this process, answers took over 1 s now and then, and a timeout at a
 * rotating provider is a refresh in doubt whatever the faults (docs/adr/0016).
 */
const REFRESH_TIMEOUT_MS = 2_000;
const LEASE_MS = 3 * REFRESH_TIMEOUT_MS;

export async function benchFaults(): Promise<BenchResult> {
  const connections = envInt("BENCH_FAULT_CONNECTIONS", 6_000);
  const latencyMs = envInt("BENCH_LATENCY_MS", 50);
  // Longer than a time limit, so that requests are cut by it, and shorter than the lease.
  const pauseMs = envInt("BENCH_FAULT_PAUSE_MS", 4_000);
  if (pauseMs >= LEASE_MS) throw new Error(`BENCH_FAULT_PAUSE_MS must be under ${LEASE_MS}`);
  const redisUrl = redisDatabaseUrl(BENCH_REDIS_DB.worker);
  const h = await createRefreshHarness({ redisUrl, prefix: QUEUE_PREFIX, latencyMs });
  await h.redis.flushdb();
  const workerEnv = {
    databaseUrl: h.db.url,
    redisUrl,
    encryptionKeys: h.encryptionKeys,
    concurrency: 100,
    env: { REFRESH_TIMEOUT_MS: String(REFRESH_TIMEOUT_MS), RETRY_MAX_DELAY_MS: "5000" },
  };
  const workers: BenchWorker[] = [];
  try {
    // The first keeps refreshing throughout; the second is the one paused, then killed.
    workers.push(await startBenchWorker(workerEnv));
    const faulty = await startBenchWorker(workerEnv);
    workers.push(faulty);

    // Pauses: the worker stopped mid-refresh finds its lease still held when it resumes.
    let pauses = 0;
    const paused = await runPhase(h, connections, async (done) => {
      while (!done()) {
        faulty.app.child.kill("SIGSTOP");
        await delay(pauseMs);
        faulty.app.child.kill("SIGCONT");
        pauses += 1;
        await delay(500);
      }
    });
    const reusedUnderPauses = h.provider.reuseCount;
    const pauseStops = await stoppedInDoubt(h, paused.added);

    // Kills: the answers the killed worker had asked for are lost with it.
    let kills = 0;
    let current = faulty;
    const killed = await runPhase(h, connections, async (done) => {
      while (!done()) {
        await delay(500);
        current.app.child.kill("SIGKILL");
        await current.app.exited;
        kills += 1;
        current = await startBenchWorker(workerEnv);
        workers.push(current);
      }
    });
    const reusedUnderKills = h.provider.reuseCount - reusedUnderPauses;
    const killStops = await stoppedInDoubt(h, killed.added);
    return {
      title:
        "worker faults: 2 worker processes, every job due at once, a provider rotating without reuse grace",
      table: {
        cores: CORES,
        connectionsPerPhase: connections,
        providerLatencyMs: latencyMs,
        leaseMs: LEASE_MS,
        pauses,
        pauseMs,
        pausePhaseSeconds: paused.seconds,
        reusedUnderPauses,
        stoppedInDoubtUnderPauses: pauseStops.rotated + pauseStops.unsent,
        kills,
        killPhaseSeconds: killed.seconds,
        reusedUnderKills,
        stoppedInDoubtUnderKills: killStops.rotated + killStops.unsent,
        stoppedInDoubtNeverReceived: killStops.unsent,
      },
      lines: [
        `rotated refresh tokens reused under ${pauses} pauses of ${pauseMs} ms (lease ${LEASE_MS} ms): ${reusedUnderPauses} (target 0: ${verdict(reusedUnderPauses === 0)}); ` +
          `connections stopped in doubt: ${pauseStops.rotated + pauseStops.unsent}`,
        `rotated refresh tokens reused under ${kills} kills: ${reusedUnderKills} (target 0: ${verdict(reusedUnderKills === 0)}); ` +
          `connections stopped in doubt (needs_reauth, never sent again, docs/adr/0016): ${killStops.rotated + killStops.unsent}, ` +
          `${killStops.rotated} of them rotated by a request of the killed process (lost with it whatever the client does), ` +
          `${killStops.unsent} whose token the provider never received`,
      ],
    };
  } finally {
    for (const worker of workers) {
      worker.app.child.kill("SIGCONT");
      await worker.stop();
    }
    await h.redis.flushdb();
    await h.close();
  }
}

/**
 * Adds `count` connections, makes each due at once, runs `inject` until every one was
 * refreshed or stopped, and says which they were and how long that took.
 */
async function runPhase(
  h: RefreshHarness,
  count: number,
  inject: (done: () => boolean) => Promise<void>,
): Promise<{ added: readonly AddedConnection[]; seconds: number }> {
  const added = await addRotatingConnections(h, count);
  const started = performance.now();
  await makeDueNow(h, added);
  let finished = false;
  const faults = inject(() => finished);
  for (;;) {
    if (performance.now() - started > 300_000) throw new Error("phase did not finish in 5 min");
    // Earlier phases' connections were all refreshed or stopped.
    const pending = await h.prisma.connection.count({
      where: { refreshCount: 0, status: { in: ["active", "expired"] } },
    });
    if (pending === 0) break;
    await delay(500);
  }
  const seconds = Number(((performance.now() - started) / 1000).toFixed(1));
  finished = true;
  await faults;
  return { added, seconds };
}

/**
 * Connections a refresh in doubt stopped, split by what the provider holds: a newer refresh
 * token than the row (rotated by a request whose answer was lost), or the row's own (the
 * request never reached it, and the stop cost a live grant).
 */
async function stoppedInDoubt(
  h: RefreshHarness,
  added: readonly AddedConnection[],
): Promise<{ rotated: number; unsent: number }> {
  const grantOf = new Map(added.map(({ connectionId, grantId }) => [connectionId, grantId]));
  const rows = await h.prisma.connection.findMany({
    where: { id: { in: [...grantOf.keys()] }, status: "needs_reauth", lastErrorCode: "in_doubt" },
    select: { id: true, refreshToken: true },
  });
  let unsent = 0;
  for (const row of rows) {
    const stored = row.refreshToken && openRefreshToken(h.keyRing, row.id, row.refreshToken);
    if (stored === h.provider.grant(grantOf.get(row.id) ?? "")?.refreshToken) unsent += 1;
  }
  return { rotated: rows.length - unsent, unsent };
}
