// Rebuilding the queue after Redis loses everything (SPEC §7: every job back within 2 min
// for 1,000,000 connections). BENCH_REBUILD_CONNECTIONS (1,000,000) `active` rows due
// within the next hour are inserted in one INSERT … SELECT (their tokens only look sealed:
// the rebuild reads id, version, status and nextRefreshAt), the queue's Redis database is
// flushed, and the scheduler's own `reconcileQueue` runs once, as at scheduler start.
// "Every job back" is when the queue first holds one job per row (polled every 250 ms);
// the sweep then walks the rebuilt delayed set to check it, which is timed too. Then a
// second sweep runs with every job present (the scheduler's every-minute case), and the
// connections table's size is read (its tokens are shorter than real sealed ones: see the
// scaling part for rows written by real refreshes).
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { createPrismaClient } from "@evergreen/db";
import { createTestDatabase } from "@evergreen/db/testing";
import { createRedis } from "@evergreen/redis";
import { RefreshQueues, reconcileQueue, refreshJobId } from "@evergreen/refresh";
import { redisDatabaseUrl } from "@evergreen/refresh/testing";
import { BENCH_REDIS_DB, type BenchResult, CORES, envInt, verdict } from "./support";

const TARGET_SECONDS = 120;
const GOAL_SECONDS = 60;
const SAMPLE_ROWS = 1_000;

export async function benchRebuild(): Promise<BenchResult> {
  const connections = envInt("BENCH_REBUILD_CONNECTIONS", 1_000_000);
  const redisUrl = redisDatabaseUrl(BENCH_REDIS_DB.rebuild);
  const db = await createTestDatabase();
  // As the scheduler's main() builds them: default pool, one producer connection.
  const prisma = createPrismaClient({ url: db.url });
  const redis = createRedis(redisUrl, "producer", "evergreen-bench");
  const probe = createRedis(redisUrl, "producer", "evergreen-bench-probe");
  const queue = new RefreshQueues(redis);
  try {
    const insertStarted = performance.now();
    const integrationId = randomUUID();
    await prisma.integration.create({
      data: {
        id: integrationId,
        key: "bench",
        provider: "oauth2",
        clientId: "bench-client",
        clientSecret: `ev1.bench.${randomUUID()}`,
        tokenUrl: "https://oauth.example.com/token",
      },
    });
    await prisma.$executeRawUnsafe(
      `INSERT INTO connections ("id", "integrationId", "externalId", "accessToken", "refreshToken",
                                "expiresAt", "version", "nextRefreshAt", "createdAt", "updatedAt")
       SELECT gen_random_uuid(), $1::uuid, 'bench-user-' || g,
              'ev1.bench.' || md5('iv' || g) || '.' || md5('at' || g) || md5('tag' || g),
              'ev1.bench.' || md5('iv-rt' || g) || '.' || md5('rt' || g) || md5('tag-rt' || g),
              due + interval '5 minutes', floor(random() * 1000)::int, due, now(), now()
         FROM (SELECT g, now() + interval '10 minutes' + random() * interval '1 hour' AS due
                 FROM generate_series(1, $2::int) AS g) AS rows`,
      integrationId,
      connections,
    );
    // A live table of this size has been vacuumed and analyzed by autovacuum long ago.
    await prisma.$executeRawUnsafe("VACUUM ANALYZE connections");
    const insertSeconds = (performance.now() - insertStarted) / 1000;

    await redis.flushdb();
    const queued = async () => {
      let count = 0;
      for (const shard of queue.shards) {
        count +=
          (await probe.zcard(shard.toKey("delayed"))) + (await probe.llen(shard.toKey("wait")));
      }
      return count;
    };
    const started = performance.now();
    let allBackSeconds = Number.NaN;
    const poll = setInterval(() => {
      void queued().then((count) => {
        if (count >= connections && Number.isNaN(allBackSeconds)) {
          allBackSeconds = (performance.now() - started) / 1000;
        }
      });
    }, 250);
    const result = await reconcileQueue(prisma, queue, redis);
    const sweepSeconds = (performance.now() - started) / 1000;
    clearInterval(poll);
    const jobs = await queued();
    if (Number.isNaN(allBackSeconds) && jobs >= connections) allBackSeconds = sweepSeconds;
    if (jobs !== connections || result.enqueued !== connections) {
      throw new Error(
        `expected ${connections} jobs, queue holds ${jobs} (${JSON.stringify(result)})`,
      );
    }
    const wrong = await checkSample(prisma, queue);
    // What the scheduler does every RECONCILE_INTERVAL_SECONDS once every job is there.
    const steadyStarted = performance.now();
    const steady = await reconcileQueue(prisma, queue, redis);
    const steadySweepSeconds = (performance.now() - steadyStarted) / 1000;
    if (steady.enqueued !== 0) throw new Error(`steady sweep added ${steady.enqueued} jobs`);
    const sizes = await tableSizes(prisma, "connections");

    const back = allBackSeconds;
    return {
      title: `rebuild after FLUSHDB: ${connections.toLocaleString("en")} connections, scheduler's reconcileQueue`,
      table: {
        cores: CORES,
        connections,
        insertSeconds: Number(insertSeconds.toFixed(1)),
        scanned: result.scanned,
        enqueued: result.enqueued,
        retimed: result.retimed,
        removed: result.removed,
        jobsInQueue: jobs,
        sampledJobsWrong: wrong,
        allJobsBackSeconds: Number(back.toFixed(1)),
        jobsPerSecond: Math.round(connections / back),
        reconcileQueueSeconds: Number(sweepSeconds.toFixed(1)),
        steadySweepSeconds: Number(steadySweepSeconds.toFixed(1)),
        connectionsTableBytes: sizes.table,
        connectionsIndexBytes: sizes.indexes,
        connectionsBytesPerRow: Math.round((sizes.table + sizes.indexes) / connections),
      },
      lines: [
        `checked ${SAMPLE_ROWS} random rows: ${wrong} without a job due at their nextRefreshAt (±1 s)`,
        `rebuild after Redis lost everything: every job back in ${back.toFixed(1)} s (${Math.round(connections / back)} jobs/s) for ${connections.toLocaleString("en")} connections (target <= ${TARGET_SECONDS} s: ${verdict(back <= TARGET_SECONDS)}; goal <= ${GOAL_SECONDS} s: ${verdict(back <= GOAL_SECONDS)})`,
        `the whole sweep (adding, then walking the delayed set to check it): ${sweepSeconds.toFixed(1)} s (${verdict(sweepSeconds <= TARGET_SECONDS)} against the same target); a sweep with every job present: ${steadySweepSeconds.toFixed(1)} s`,
        `PostgreSQL: connections ${mb(sizes.table)} MB of rows (TOAST included) and ${mb(sizes.indexes)} MB of indexes for ${connections.toLocaleString("en")} rows, ${Math.round((sizes.table + sizes.indexes) / connections)} bytes each`,
      ],
    };
  } finally {
    await redis.flushdb();
    await queue.close();
    await redis.quit();
    await probe.quit();
    await prisma.$disconnect();
    await db.drop();
  }
}

/** Rows picked at random whose job is missing or not due at the row's nextRefreshAt. */
async function checkSample(
  prisma: ReturnType<typeof createPrismaClient>,
  queue: RefreshQueues,
): Promise<number> {
  const rows = await prisma.$queryRawUnsafe<{ id: string; version: number; nextRefreshAt: Date }[]>(
    `SELECT id::text, version, "nextRefreshAt" FROM connections ORDER BY random() LIMIT ${SAMPLE_ROWS}`,
  );
  let wrong = 0;
  for (const row of rows) {
    const job = await queue.getJob(refreshJobId({ connectionId: row.id, version: row.version }));
    const dueMs = job ? job.timestamp + (job.opts.delay ?? 0) : Number.NaN;
    if (!(Math.abs(dueMs - row.nextRefreshAt.getTime()) <= 1_000)) wrong += 1;
  }
  return wrong;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(0);

/** Bytes of a table's rows (heap and TOAST) and of its indexes. */
export async function tableSizes(
  prisma: ReturnType<typeof createPrismaClient>,
  table: string,
): Promise<{ table: number; indexes: number }> {
  const [row] = await prisma.$queryRawUnsafe<{ table: bigint; indexes: bigint }[]>(
    "SELECT pg_table_size($1::regclass) AS table, pg_indexes_size($1::regclass) AS indexes",
    table,
  );
  return { table: Number(row?.table ?? 0), indexes: Number(row?.indexes ?? 0) };
}
