import type { RedisClient } from "@evergreen/redis";
import { parseRefreshJobId, REFRESH_JOB, type RefreshQueue } from "./jobs";
import { refreshJob } from "./schedule";

/**
 * Adds a page of missing delayed refresh jobs in one script call, writing exactly what
 * BullMQ 6's `addDelayedJob` writes for our jobs (docs/adr/0019): the job hash (`name`,
 * `data` `{}`, `opts`, `timestamp`, `delay`, `priority`), its member in the delayed set
 * scored `dueMs * 0x1000 + sequence` (getDelayedScore.lua), and the marker that wakes
 * blocked workers (addDelayMarkerIfNeeded.lua). It skips what only BullMQ's event
 * listeners read (the `added` and `delayed` stream events) and the job counter, which
 * custom ids do not use.
 *
 * BullMQ runs one script a job, about 50 µs of Redis each: a rebuild of 1,000,000 jobs
 * took 80 s. This is one script a page, checking existence in the same call.
 *
 * Rows already due are not added here: BullMQ puts those in the wait list, which depends
 * on the queue's paused state; the caller adds them with `queue.addBulk`.
 *
 * KEYS: delayed set, marker. ARGV: key prefix, job name, now (ms), then id and due (ms)
 * pairs. Returns how many it added, and the ids that were missing and due already.
 */
const ADD_DELAYED_JOBS = `
local delayedKey, markerKey = KEYS[1], KEYS[2]
local prefix, name, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local added, due_now = 0, {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local jobKey = prefix .. id
  if redis.call("EXISTS", jobKey) == 0 then
    local due = tonumber(ARGV[i + 1])
    local delay = due - now
    if delay <= 0 then
      due_now[#due_now + 1] = id
    else
      redis.call("HSET", jobKey, "name", name, "data", "{}",
        "opts", '{"delay":' .. delay .. ',"attempts":0}',
        "timestamp", now, "delay", delay, "priority", 0)
      local minScore = due * 0x1000
      local maxScore = (due + 1) * 0x1000 - 1
      local last = redis.call("ZREVRANGEBYSCORE", delayedKey, maxScore, minScore,
        "WITHSCORES", "LIMIT", 0, 1)
      local score = minScore
      if last[2] then score = math.min(tonumber(last[2]) + 1, maxScore) end
      redis.call("ZADD", delayedKey, score, id)
      added = added + 1
    end
  end
end
if added > 0 then
  local first = redis.call("ZRANGE", delayedKey, 0, 0, "WITHSCORES")
  if first[2] then redis.call("ZADD", markerKey, tonumber(first[2]) / 0x1000, "1") end
end
return {added, due_now}
`;

export interface DelayedJobEntry {
  /** `<connectionId>.<version>` */
  readonly id: string;
  readonly dueAt: number;
}

/**
 * Adds the delayed jobs among `entries` whose id does not exist (in any state); returns the
 * ids of missing jobs that are due by `now`, for `queue.addBulk`.
 */
export async function addMissingDelayedJobs(
  redis: RedisClient,
  queue: RefreshQueue,
  entries: readonly DelayedJobEntry[],
  now: number,
): Promise<{ added: number; dueNow: string[] }> {
  if (entries.length === 0) return { added: 0, dueNow: [] };
  const args: (string | number)[] = [queue.toKey(""), REFRESH_JOB, now];
  for (const { id, dueAt } of entries) args.push(id, dueAt);
  const [added, dueNow] = (await redis.eval(
    ADD_DELAYED_JOBS,
    2,
    queue.toKey("delayed"),
    queue.toKey("marker"),
    ...args,
  )) as [number, string[]];
  return { added, dueNow };
}

/**
 * Adds the jobs among `entries` whose id does not exist, in any state: the delayed ones with
 * the script, those due by `now` with BullMQ's addBulk (which puts them in the wait list, or
 * the paused one). Returns how many it added. The sweep adds its pages this way, and so do
 * processes adding delayed jobs one by one (RefreshQueues batches those per event-loop turn).
 */
export async function addJobsIfMissing(
  redis: RedisClient,
  queue: RefreshQueue,
  entries: readonly DelayedJobEntry[],
  now: Date,
): Promise<number> {
  const { added, dueNow } = await addMissingDelayedJobs(redis, queue, entries, now.getTime());
  if (dueNow.length === 0) return added;
  await queue.addBulk(
    dueNow.flatMap((id) => {
      const payload = parseRefreshJobId(id);
      return payload ? [refreshJob(payload, now, now)] : [];
    }),
  );
  return added + dueNow.length;
}
