// Redis memory held by scheduled connections (SPEC §7: 1,000,000 in at most 1 GB; goal
// <= 500 bytes each). BENCH_MEMORY_JOBS (1,000,000) delayed jobs are added exactly as
// production adds them: `createRefreshQueue` (prefix `{evergreen}`), id `<uuid>.<version>`,
// empty data (docs/adr/0018), due within the next hour, in addBulk pages of 1,000 like the
// scheduler's sweep. Measured: `used_memory` before and after, plus a per-key
// breakdown with MEMORY USAGE.
//
// `used_memory` is per Redis instance, not per database: anything else writing to this
// Redis meanwhile (tests, `npm start`) skews it. The run compares every other database's
// key count before and after and says whether they moved.
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { createRedis } from "@evergreen/redis";
import { createRefreshQueue, refreshJob } from "@evergreen/refresh";
import { redisDatabaseUrl } from "@evergreen/refresh/testing";
import type { Redis } from "ioredis";
import { BENCH_REDIS_DB, type BenchResult, CORES, envInt, redisInfo, verdict } from "./support";

const TARGET_BYTES = 1_000_000_000;
const GOAL_BYTES_PER_JOB = 500;
const PAGE = 1_000;
/** addBulk pages in flight at once: enough to keep Redis busy over loopback. */
const PARALLEL_PAGES = 4;
const SAMPLE_JOBS = 1_000;

export async function benchRedisMemory(): Promise<BenchResult> {
  const jobs = envInt("BENCH_MEMORY_JOBS", 1_000_000);
  const redis = createRedis(redisDatabaseUrl(BENCH_REDIS_DB.memory), "producer", "evergreen-bench");
  const queue = createRefreshQueue(redis);
  await redis.flushdb();
  try {
    // One job first, so the queue's meta keys and BullMQ's Lua scripts (cached per
    // instance) are in place before the baseline and not counted per job.
    const first = productionJob(Date.now());
    await queue.add(first.name, first.data, first.opts);
    const othersBefore = await otherDatabases(redis);
    const before = await usedMemory(redis);

    const started = performance.now();
    let next = 0;
    const addPages = async () => {
      while (next < jobs) {
        const count = Math.min(PAGE, jobs - next);
        next += count;
        const now = Date.now();
        await queue.addBulk(Array.from({ length: count }, () => productionJob(now)));
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_PAGES }, addPages));
    const addSeconds = (performance.now() - started) / 1000;

    const after = await usedMemory(redis);
    const othersAfter = await otherDatabases(redis);
    const delayed = await redis.zcard(queue.toKey("delayed"));
    if (delayed !== jobs + 1)
      throw new Error(`expected ${jobs + 1} delayed jobs, found ${delayed}`);

    const breakdown = await keyBreakdown(redis, queue.toKey(""));
    const bytes = after.used - before.used;
    const perJob = bytes / jobs;
    const perMillion = Math.round(perJob * 1_000_000);
    const othersMoved = othersBefore !== othersAfter;
    return {
      title: `Redis memory: ${jobs.toLocaleString("en")} delayed refresh jobs, as production adds them`,
      table: {
        cores: CORES,
        jobs,
        redisDatabase: BENCH_REDIS_DB.memory,
        addSeconds: Number(addSeconds.toFixed(1)),
        jobsAddedPerSecond: Math.round(jobs / addSeconds),
        usedMemoryBefore: before.used,
        usedMemoryAfter: after.used,
        usedMemoryDelta: bytes,
        usedMemoryRssDelta: after.rss - before.rss,
        bytesPerJob: Math.round(perJob),
        jobHashBytes: Math.round(breakdown.jobHashBytes),
        jobHashEncoding: breakdown.jobHashEncoding,
        delayedZsetBytesPerJob: Math.round(breakdown.delayedBytes / (jobs + 1)),
        otherQueueKeysBytes: breakdown.otherBytes,
        otherDatabasesBefore: othersBefore || "(empty)",
        otherDatabasesAfter: othersAfter || "(empty)",
      },
      lines: [
        `used_memory is per Redis instance: ${
          othersMoved
            ? "OTHER DATABASES CHANGED during the run, so the figure includes their writes"
            : "no other database changed during the run"
        }`,
        `job hash fields: ${breakdown.jobHashFields}; a field over hash-max-listpack-value (${breakdown.listpackValueLimit} B) makes the hash a hashtable`,
        `Redis memory per delayed job: ${Math.round(perJob)} bytes; for 1,000,000 scheduled connections: ${(perMillion / 1e6).toFixed(0)} MB = ${(perMillion / 2 ** 20).toFixed(0)} MiB (target <= 1 GB = 10^9 bytes: ${verdict(perMillion <= TARGET_BYTES)}; goal <= ${GOAL_BYTES_PER_JOB} bytes per scheduled connection: ${verdict(perJob <= GOAL_BYTES_PER_JOB)})`,
      ],
    };
  } finally {
    await redis.flushdb();
    await queue.close();
    await redis.quit();
  }
}

/** One connection's job (name, data, opts), due 5 to 60 minutes after `now`. */
function productionJob(now: number) {
  const payload = { connectionId: randomUUID(), version: Math.floor(Math.random() * 10_000) };
  const dueMs = now + 300_000 + Math.floor(Math.random() * 3_300_000);
  return refreshJob(payload, new Date(dueMs), new Date(now));
}

/** After a pause, so that freed client buffers and lazy frees have settled. */
async function usedMemory(redis: Redis): Promise<{ used: number; rss: number }> {
  await delay(1_000);
  const info = await redisInfo(redis, "memory");
  return { used: Number(info.get("used_memory")), rss: Number(info.get("used_memory_rss")) };
}

/** Key counts of every database but ours, e.g. `db0:keys=8`; empty when there are none. */
async function otherDatabases(redis: Redis): Promise<string> {
  const keyspace = await redisInfo(redis, "keyspace");
  return [...keyspace]
    .filter(([name]) => name !== `db${BENCH_REDIS_DB.memory}`)
    .map(([name, value]) => `${name}:${value.split(",")[0]}`)
    .join(" ");
}

/** MEMORY USAGE of a sample of job hashes, of the delayed set, and of the queue's other keys. */
async function keyBreakdown(redis: Redis, queueKeyPrefix: string) {
  const [, sampled] = await redis.zscan(`${queueKeyPrefix}delayed`, "0", "COUNT", SAMPLE_JOBS);
  const ids = sampled.filter((_, index) => index % 2 === 0).slice(0, SAMPLE_JOBS);
  const usage = redis.pipeline();
  for (const id of ids) usage.memory("USAGE", `${queueKeyPrefix}${id}`, "SAMPLES", "0");
  const sizes = ((await usage.exec()) ?? []).map(([, bytes]) => Number(bytes));
  const jobHashBytes = sizes.reduce((sum, bytes) => sum + bytes, 0) / Math.max(1, sizes.length);
  const first = `${queueKeyPrefix}${ids[0] ?? ""}`;
  const fields = await redis.hgetall(first);
  const jobHashFields = Object.entries(fields)
    .map(([field, value]) => `${field} (${Buffer.byteLength(value)} B)`)
    .join(", ");
  const memoryUsage = async (key: string) =>
    Number((await redis.memory("USAGE", key, "SAMPLES", "0")) ?? 0);
  let otherBytes = 0;
  for (const suffix of ["events", "meta", "id", "marker"]) {
    otherBytes += await memoryUsage(`${queueKeyPrefix}${suffix}`);
  }
  return {
    jobHashBytes,
    jobHashEncoding: String(await redis.object("ENCODING", first)),
    listpackValueLimit: String(
      ((await redis.config("GET", "hash-max-listpack-value")) as string[])[1] ?? "?",
    ),
    jobHashFields,
    delayedBytes: await memoryUsage(`${queueKeyPrefix}delayed`),
    otherBytes,
  };
}
