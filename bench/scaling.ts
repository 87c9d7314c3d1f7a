// Many cores (issue 13): how far one worker process is from the HTTP ceiling, and what a
// second process adds, measured in one run since absolute figures move with the machine.
// Five phases against one mock provider running in its own process (50 ms latency):
//
// 1. ceiling: bare axios POSTs/s from one client process at the workers' concurrency, with
//    the egress client's axios settings (keep-alive agent, one socket per concurrent
//    request, no proxy, no redirects), each a real refresh_token grant the provider answers
//    (bench/axios-ceiling.ts);
// 2. the same from two client processes: what a second process of any client adds on this
//    box, the bound the workers' "2 vs 1" meets too;
// 3. BullMQ no-op jobs/s from this process at the same concurrency (context);
// 4. one worker process (`apps/worker/src/main.ts`), then 5. two, refreshing connections
//    whose jobs are all due: each phase warms its processes with a burst first, then the
//    queue is paused, the measured jobs added, and the clock runs from resume until every
//    new token is stored.
//
// Each phase records the CPU used by every process involved (from /proc and Redis's INFO),
// in percent of one core, to show what stops the second process from doubling the rate.
// PostgreSQL's figure is the backends serving this run's database (not the WAL writer or
// checkpointer); Redis's is the whole instance, so anything else using it meanwhile counts
// too, as it does in the commands per refresh. Redis database 15.
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import { createPrismaClient, type PrismaClient } from "@evergreen/db";
import { createTestDatabase } from "@evergreen/db/testing";
import { createRedis } from "@evergreen/redis";
import {
  createRefreshQueue,
  type RefreshQueue,
  refreshJob,
  sealAccessToken,
  sealClientSecret,
  sealRefreshToken,
} from "@evergreen/refresh";
import { redisDatabaseUrl } from "@evergreen/refresh/testing";
import { Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { startAxiosClients } from "./axios-ceiling";
import {
  type CpuCounters,
  coreShare,
  machineBusySeconds,
  peakRssMiB,
  processCpuSeconds,
  processesCpuSeconds,
  redisCpuSeconds,
  sampleCpu,
} from "./process-cpu";
import { type ProviderProcess, startProviderProcess } from "./provider-process";
import {
  BENCH_REDIS_DB,
  type BenchResult,
  type BenchWorker,
  CORES,
  envInt,
  type RefreshProgress,
  redisInfo,
  startBenchWorker,
  verdict,
  waitForStored,
} from "./support";

const GOAL_CEILING_SHARE = 0.6;
const GOAL_TWO_VS_ONE = 1.6;
const PAGE = 1_000;

interface Phase {
  readonly perSecond: number;
  readonly seconds: number;
  /** Percent of one core per process between the phase's start and end. */
  readonly cpu: Record<string, number>;
  /** Commands Redis processed per unit (job, POST, refresh): instance-wide, an upper bound. */
  readonly redisCommandsPerUnit: number;
}

/** This database's commits and row writes per refresh (pg_stat_database), and sizes. */
interface PostgresCost {
  readonly commitsPerRefresh: number;
  readonly rowsInsertedPerRefresh: number;
  readonly rowsUpdatedPerRefresh: number;
  readonly eventsPerRefresh: number;
  /** connection_events rows and indexes over its row count. */
  readonly bytesPerEvent: number;
  /** connections rows (real sealed tokens) and indexes over its row count. */
  readonly bytesPerConnection: number;
}

interface Setup {
  readonly prisma: PrismaClient;
  readonly redis: Redis;
  readonly redisUrl: string;
  readonly queue: RefreshQueue;
  readonly provider: ProviderProcess;
  readonly keyRing: KeyRing;
  readonly encryptionKeys: string;
  readonly databaseUrl: string;
  readonly concurrency: number;
}

export async function benchScaling(): Promise<BenchResult> {
  const count = envInt("BENCH_SCALING_CONNECTIONS", 20_000);
  const warmup = envInt("BENCH_SCALING_WARMUP", 2_000, 0);
  const latencyMs = envInt("BENCH_LATENCY_MS", 50);
  const concurrency = envInt("BENCH_CONCURRENCY", 200);
  const redisUrl = redisDatabaseUrl(BENCH_REDIS_DB.scaling);
  const db = await createTestDatabase();
  const prisma = createPrismaClient({ url: db.url, poolSize: 5 });
  const redis = createRedis(redisUrl, "producer", "evergreen-bench");
  const queue = createRefreshQueue(redis);
  const provider = await startProviderProcess(latencyMs);
  const encryptionKeys = generateEncryptionKey("bench");
  const setup: Setup = {
    prisma,
    redis,
    redisUrl,
    queue,
    provider,
    keyRing: KeyRing.fromSpec(encryptionKeys),
    encryptionKeys,
    databaseUrl: db.url,
    concurrency,
  };
  const loadBefore = loadavg()[0] ?? 0;
  await redis.flushdb();
  try {
    const ceiling = await axiosCeiling(setup, 1, count, warmup);
    const ceilingTwo = await axiosCeiling(setup, 2, count, warmup);
    const noop = await bullmqNoop(setup, count);
    const one = await workerPhase(setup, 1, count, warmup);
    const two = await workerPhase(setup, 2, count, warmup);
    const { reuseCount } = await provider.stats();

    const ceilingShare = one.perSecond / ceiling.perSecond;
    const twoVsOne = two.perSecond / one.perSecond;
    const ceilingTwoVsOne = ceilingTwo.perSecond / ceiling.perSecond;
    const cpuColumns = (name: string, phase: Phase) =>
      Object.fromEntries(
        Object.entries(phase.cpu).map(([process, share]) => [`${name}Cpu.${process} %`, share]),
      );
    const processShares = (phase: Phase) =>
      Object.fromEntries(Object.entries(phase.cpu).filter(([name]) => name !== "machine"));
    const total = (phase: Phase) =>
      Object.values(processShares(phase)).reduce((sum, share) => sum + share, 0);
    const cpuLine = (phase: Phase) =>
      `${JSON.stringify(processShares(phase))}, sum ${total(phase)} %; machine ${phase.cpu.machine ?? 0} % busy, ${(phase.cpu.machine ?? 0) - total(phase)} % of it outside these processes (kernel network stack, other services)`;
    return {
      title: `scaling: HTTP ceiling, BullMQ no-op rate, 1 and 2 worker processes (${count.toLocaleString("en")} each)`,
      table: {
        cores: CORES,
        loadAverageBefore: Number(loadBefore.toFixed(1)),
        loadAverageAfter: Number((loadavg()[0] ?? 0).toFixed(1)),
        providerLatencyMs: latencyMs,
        concurrencyPerProcess: concurrency,
        connectionsPerPhase: count,
        axiosPostsPerSecond: ceiling.perSecond,
        axiosPostsPerSecondTwoProcesses: ceilingTwo.perSecond,
        bullmqNoopJobsPerSecond: noop.perSecond,
        oneWorkerRefreshesPerSecond: one.perSecond,
        twoWorkersRefreshesPerSecond: two.perSecond,
        workerToCeilingPercent: Math.round(100 * ceilingShare),
        twoVsOne: Number(twoVsOne.toFixed(2)),
        axiosTwoVsOne: Number(ceilingTwoVsOne.toFixed(2)),
        rotatedTokenReuse: reuseCount,
        workerPeakRssMiB: Math.max(one.peakRssMiB, two.peakRssMiB),
        redisCommandsPerRefresh: one.redisCommandsPerUnit,
        redisCommandsPerNoopJob: noop.redisCommandsPerUnit,
        ...Object.fromEntries(
          Object.entries(one.postgres).map(([name, value]) => [`postgres.${name}`, value]),
        ),
        ...cpuColumns("ceiling", ceiling),
        ...cpuColumns("ceilingTwo", ceilingTwo),
        ...cpuColumns("noop", noop),
        ...cpuColumns("oneWorker", one),
        ...cpuColumns("twoWorkers", two),
      },
      lines: [
        `one worker process at ${Math.round(100 * ceilingShare)} % of bare axios POSTs (${one.perSecond} vs ${ceiling.perSecond}/s; goal >= ${100 * GOAL_CEILING_SHARE} %: ${verdict(ceilingShare >= GOAL_CEILING_SHARE)}); BullMQ alone runs ${noop.perSecond} no-op jobs/s`,
        `2 worker processes: ${two.perSecond} refreshes/s, ${twoVsOne.toFixed(2)}x one (goal >= ${GOAL_TWO_VS_ONE}x: ${verdict(twoVsOne >= GOAL_TWO_VS_ONE)})`,
        `2 bare axios client processes: ${ceilingTwo.perSecond} POSTs/s, ${ceilingTwoVsOne.toFixed(2)}x one: what a second process of any client adds on this box, the provider sharing its cores (machine ${ceilingTwo.cpu.machine ?? 0} % busy)`,
        `CPU, % of one core (${CORES} cores = ${100 * CORES} %): one worker ${cpuLine(one)}; two workers ${cpuLine(two)}`,
        `time in flight (concurrency / rate, Little's law): ${inFlightMs(concurrency, ceiling)} ms per POST, ${inFlightMs(concurrency, one)} ms per refresh (provider latency ${latencyMs} ms)`,
        `CPU ms per refresh, one worker: ${JSON.stringify(cpuMsPerUnit(one))}; per POST: ${JSON.stringify(cpuMsPerUnit(ceiling))}`,
        `rotated refresh tokens reused: ${reuseCount} (target 0: ${verdict(reuseCount === 0)})`,
      ],
    };
  } finally {
    await redis.flushdb();
    await queue.close();
    await redis.quit();
    await provider.stop();
    await prisma.$disconnect();
    await db.drop();
  }
}

/** How long each unit of work is in flight when `concurrency` of them always are. */
const inFlightMs = (concurrency: number, phase: Phase) =>
  Math.round((1000 * concurrency) / phase.perSecond);

/** Milliseconds of CPU per unit of work, by process. */
const cpuMsPerUnit = (phase: Phase) =>
  Object.fromEntries(
    Object.entries(phase.cpu).map(([name, share]) => [
      name,
      Number(((10 * share) / phase.perSecond).toFixed(3)),
    ]),
  );

/** CPU counters of this process, the provider's, Redis and PostgreSQL, plus `extra`. */
function counters(setup: Setup, extra: CpuCounters = {}): CpuCounters {
  return {
    bench: async () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1e6;
    },
    machine: machineBusySeconds,
    provider: () => processCpuSeconds(setup.provider.pid),
    redis: () => redisCpuSeconds(setup.redis),
    postgres: async () => processesCpuSeconds(await backendPids(setup.prisma)),
    ...extra,
  };
}

async function timed(setup: Setup, read: CpuCounters, run: () => Promise<number>): Promise<Phase> {
  const commands = async () =>
    Number((await redisInfo(setup.redis, "stats")).get("total_commands_processed"));
  const [before, commandsBefore] = await Promise.all([sampleCpu(read), commands()]);
  const started = performance.now();
  const done = await run();
  const seconds = (performance.now() - started) / 1000;
  const [after, commandsAfter] = await Promise.all([sampleCpu(read), commands()]);
  return {
    perSecond: Math.round(done / seconds),
    seconds: Number(seconds.toFixed(2)),
    cpu: coreShare(before, after, seconds),
    redisCommandsPerUnit: Number(((commandsAfter - commandsBefore) / done).toFixed(1)),
  };
}

/**
 * Bare axios POSTs of refresh_token grants from `processes` client processes, each at the
 * workers' concurrency, after a warm-up; `count` in all, split between them.
 */
async function axiosCeiling(
  setup: Setup,
  processes: number,
  count: number,
  warmup: number,
): Promise<Phase> {
  const { provider, concurrency } = setup;
  // Non-rotating grants, one per loop: each loop can send its refresh token again.
  const bodies = async () =>
    (await provider.issueGrants(concurrency, false)).map((grant) =>
      new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: grant.refreshToken,
        client_id: provider.clientId,
        client_secret: provider.clientSecret,
      }).toString(),
    );
  const perClient = await Promise.all(Array.from({ length: processes }, bodies));
  const clients = await startAxiosClients(provider.tokenUrl, perClient);
  try {
    await Promise.all(clients.map((client) => client.post(warmup)));
    const clientCounters = Object.fromEntries(
      clients.map((client, index) => [`client${index + 1}`, () => processCpuSeconds(client.pid)]),
    );
    return await timed(setup, counters(setup, clientCounters), async () => {
      const share = Math.ceil(count / processes);
      await Promise.all(clients.map((client) => client.post(share)));
      return share * processes;
    });
  } finally {
    await Promise.all(clients.map((client) => client.stop()));
  }
}

/** BullMQ's own rate: `count` waiting jobs that do nothing, one consumer at `concurrency`. */
async function bullmqNoop(setup: Setup, count: number): Promise<Phase> {
  const prefix = "{bench-noop}";
  const queue = new Queue("noop", { connection: setup.redis, prefix });
  const consumer = createRedis(setup.redisUrl, "consumer", "evergreen-bench-noop");
  let completed = 0;
  let allDone = () => {};
  const finished = new Promise<void>((resolve) => {
    allDone = resolve;
  });
  const worker = new Worker("noop", async () => {}, {
    connection: consumer,
    prefix,
    concurrency: setup.concurrency,
    autorun: false,
    removeOnComplete: { count: 0 },
  });
  worker.on("completed", () => {
    completed += 1;
    if (completed === count) allDone();
  });
  try {
    for (let start = 0; start < count; start += PAGE) {
      const size = Math.min(PAGE, count - start);
      await queue.addBulk(Array.from({ length: size }, () => ({ name: "noop", data: {} })));
    }
    return await timed(setup, counters(setup), async () => {
      void worker.run();
      await finished;
      return count;
    });
  } finally {
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
    await consumer.quit();
  }
}

/** Refreshes of one integration's connections, from now on at the provider. */
async function progressOf(setup: Setup, integrationId: string): Promise<RefreshProgress> {
  const before = (await setup.provider.stats()).requests;
  return {
    answered: async () => (await setup.provider.stats()).requests - before,
    stored: () =>
      setup.prisma.connection.count({ where: { integrationId, refreshCount: { gte: 1 } } }),
  };
}

/** `processes` real worker processes refreshing `count` connections due at once. */
async function workerPhase(
  setup: Setup,
  processes: number,
  count: number,
  warmup: number,
): Promise<Phase & { readonly postgres: PostgresCost; readonly peakRssMiB: number }> {
  const warm = await addConnections(setup, `warm-${processes}`, warmup * processes);
  const measured = await addConnections(setup, `run-${processes}`, count);
  const statsBefore = await databaseStats(setup.prisma);
  const workers = await Promise.all(
    Array.from({ length: processes }, () =>
      startBenchWorker({
        databaseUrl: setup.databaseUrl,
        redisUrl: setup.redisUrl,
        encryptionKeys: setup.encryptionKeys,
        concurrency: setup.concurrency,
      }),
    ),
  );
  try {
    // Counted from before the jobs exist: the workers take them as they are enqueued.
    const warmProgress = await progressOf(setup, warm.integrationId);
    await enqueueDue(setup.queue, warm.ids);
    await waitForStored(warmProgress, warm.ids.length);
    await setup.queue.pause();
    await enqueueDue(setup.queue, measured.ids);
    const workerCounters = Object.fromEntries(
      workers.map((worker: BenchWorker, index) => [
        `worker${index + 1}`,
        () => processCpuSeconds(worker.app.child.pid ?? 0),
      ]),
    );
    const measuredProgress = await progressOf(setup, measured.integrationId);
    const phase = await timed(setup, counters(setup, workerCounters), async () => {
      await setup.queue.resume();
      await waitForStored(measuredProgress, count);
      return count;
    });
    const peaks = await Promise.all(workers.map((worker) => peakRssMiB(worker.app.child.pid ?? 0)));
    // Stopped workers' backends have exited, which flushes their statistics.
    await Promise.all(workers.map((worker) => worker.stop()));
    const refreshes = warm.ids.length + count;
    return {
      ...phase,
      postgres: await postgresCost(setup.prisma, statsBefore, refreshes),
      peakRssMiB: Math.max(...peaks),
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
  }
}

/** The PostgreSQL backends serving this run's database (its processes on this machine). */
async function backendPids(prisma: PrismaClient): Promise<number[]> {
  const rows = await prisma.$queryRaw<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database()`;
  return rows.map((row) => row.pid);
}

type DatabaseStats = Record<"commits" | "inserted" | "updated" | "events", number>;

async function databaseStats(prisma: PrismaClient): Promise<DatabaseStats> {
  const [row] = await prisma.$queryRaw<Record<keyof DatabaseStats, bigint>[]>`
    SELECT xact_commit AS commits, tup_inserted AS inserted, tup_updated AS updated,
           (SELECT count(*) FROM connection_events) AS events
      FROM pg_stat_database WHERE datname = current_database()`;
  return {
    commits: Number(row?.commits ?? 0),
    inserted: Number(row?.inserted ?? 0),
    updated: Number(row?.updated ?? 0),
    events: Number(row?.events ?? 0),
  };
}

async function postgresCost(
  prisma: PrismaClient,
  before: DatabaseStats,
  refreshes: number,
): Promise<PostgresCost> {
  const after = await databaseStats(prisma);
  const [sizes] = await prisma.$queryRaw<
    { events: bigint; eventBytes: bigint; connections: bigint; connectionBytes: bigint }[]
  >`
    SELECT (SELECT count(*) FROM connection_events) AS events,
           pg_total_relation_size('connection_events') AS "eventBytes",
           (SELECT count(*) FROM connections) AS connections,
           pg_total_relation_size('connections') AS "connectionBytes"`;
  const events = Number(sizes?.events ?? 0);
  const perRefresh = (value: number) => Number((value / refreshes).toFixed(2));
  return {
    commitsPerRefresh: perRefresh(after.commits - before.commits),
    rowsInsertedPerRefresh: perRefresh(after.inserted - before.inserted),
    rowsUpdatedPerRefresh: perRefresh(after.updated - before.updated),
    eventsPerRefresh: perRefresh(after.events - before.events),
    bytesPerEvent: Math.round(Number(sizes?.eventBytes ?? 0) / Math.max(1, events)),
    bytesPerConnection: Math.round(
      Number(sizes?.connectionBytes ?? 0) / Math.max(1, Number(sizes?.connections ?? 0)),
    ),
  };
}

/** An integration at the provider and `count` connections on rotating grants. */
async function addConnections(setup: Setup, key: string, count: number) {
  const { prisma, provider, keyRing } = setup;
  const integrationId = randomUUID();
  await prisma.integration.create({
    data: {
      id: integrationId,
      key,
      provider: "oauth2",
      clientId: provider.clientId,
      clientSecret: sealClientSecret(keyRing, integrationId, provider.clientSecret),
      tokenUrl: provider.tokenUrl,
    },
  });
  const ids: string[] = [];
  for (let start = 0; start < count; start += PAGE) {
    const grants = await provider.issueGrants(Math.min(PAGE, count - start), true);
    const rows = grants.map((grant, offset) => {
      const id = randomUUID();
      ids.push(id);
      return {
        id,
        integrationId,
        externalId: `${key}-${start + offset}`,
        accessToken: sealAccessToken(keyRing, id, grant.accessToken),
        refreshToken: sealRefreshToken(keyRing, id, grant.refreshToken),
        expiresAt: new Date(Date.now() + 3_600_000),
      };
    });
    await prisma.connection.createMany({ data: rows });
  }
  return { integrationId, ids };
}

async function enqueueDue(queue: RefreshQueue, ids: readonly string[]): Promise<void> {
  for (let start = 0; start < ids.length; start += PAGE) {
    const now = new Date();
    await queue.addBulk(
      ids
        .slice(start, start + PAGE)
        .map((connectionId) => refreshJob({ connectionId, version: 0 }, now, now)),
    );
  }
}
