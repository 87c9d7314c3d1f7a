import type { PrismaClient } from "@evergreen/db";
import type { RedisClient } from "@evergreen/redis";
import { ErrorCode } from "bullmq";
import { addJobsIfMissing } from "./add-delayed-jobs";
import { adoptParkedAnswers, otherLayoutCounts } from "./adopt-parked-answers";
import {
  parseRefreshJobId,
  REFRESHABLE,
  type RefreshJobPayload,
  type RefreshQueue,
  refreshJobId,
} from "./jobs";
import { ParkedAnswers } from "./parked-answers";
import { RefreshQueues } from "./refresh-queues";
import { refreshJob } from "./schedule";

export interface ReconcileOptions {
  /** Connections read per keyset page, and queue entries per page. @defaultValue 1000 */
  readonly batchSize?: number;
  /** @defaultValue () => new Date() */
  readonly now?: () => Date;
}

export interface ReconcileResult {
  /** Connections that should have a pending job. */
  readonly scanned: number;
  /** Jobs that were missing and were added. */
  readonly enqueued: number;
  /** Delayed jobs moved to their row's `nextRefreshAt`. */
  readonly retimed: number;
  /** Delayed or waiting jobs no row wants (deleted, stopped, stale version), removed. */
  readonly removed: number;
  /** Queue entries whose id is not `<connectionId>.<version>`: not ours, left alone. */
  readonly unrecognized: number;
  /** Jobs taken out of a previous shard layout's queues and queued in their shard now. */
  readonly moved: number;
  /** Parked answers moved from a previous shard layout into their shard now. */
  readonly parkedMoved: number;
}

/**
 * How far a delayed job may sit from its row's `nextRefreshAt` before it is moved. Every
 * producer computes a job's delay and BullMQ stamps it on the same clock, so a job lands
 * within milliseconds of its row whatever the skew between hosts: 1 s is far above that
 * drift and far below a refresh buffer (minutes), so only a real mistiming is moved.
 */
const RETIME_TOLERANCE_MS = 1_000;

/** BullMQ 6 scores a delayed job `dueMs * 0x1000 + sequence` (getDelayedScore.lua). */
const DELAYED_SCORE_PER_MS = 0x1000;

interface Sweep {
  readonly prisma: PrismaClient;
  /** The current layout's queues: where every wanted job belongs. */
  readonly queues: RefreshQueues;
  readonly redis: RedisClient;
  readonly batchSize: number;
  readonly now: () => Date;
}

/** A delayed or waiting job as the queue walk meets it; `dueAt` only for delayed ones. */
interface QueueEntry {
  readonly id: string;
  readonly dueAt?: number;
}

interface Tally {
  retimed: number;
  removed: number;
  unrecognized: number;
  moved: number;
}

/**
 * Makes the queue match the database in two walks, each in pages of `batchSize`:
 *
 * 1. `active` and `expired` rows with a `nextRefreshAt`, in id order (keyset pages): a row
 *    whose job `<id>.<version>` does not exist gets it, due at `nextRefreshAt`.
 * 2. The delayed set and the wait list: a job whose row is gone, stopped (`needs_reauth`,
 *    `error`, nothing due) or at another version is removed; a delayed job of the current
 *    version that is due more than 1 s away from `nextRefreshAt` is moved there, unless a
 *    worker has started it (see `retime`). Active jobs are never touched.
 *
 * Adding comes first so that a job added for a row deleted meanwhile is removed by the same
 * sweep. Every step is idempotent, so several schedulers may sweep at once without a
 * leader: a job id names the row version it is for, two schedulers adding the same id make
 * one job, removing a removed job and moving a job to the time it has are no-ops, and
 * BullMQ refuses to remove a job a worker holds.
 *
 * Each shard of the queue (REFRESH_QUEUE_SHARDS) is walked in turn. Shards of another
 * count, left behind when REFRESH_QUEUE_SHARDS changed, are emptied into the current ones
 * (see drainLayout): the database says which jobs should exist, so nothing is lost.
 */
export async function reconcileQueue(
  prisma: PrismaClient,
  /** The queue's shards, and a plain connection to the Redis they live in (pipelined reads). */
  queues: RefreshQueues,
  redis: RedisClient,
  { batchSize = 1000, now = () => new Date() }: ReconcileOptions = {},
): Promise<ReconcileResult> {
  const sweep: Sweep = { prisma, queues, redis, batchSize, now };
  const previous = await previousLayouts(sweep);
  // Before any job of a moved connection is queued in its new shard.
  const parkedMoved = await adoptParkedAnswers(redis, queues.layout);
  const { scanned, enqueued } = await addMissingJobs(sweep);
  const tally: Tally = { retimed: 0, removed: 0, unrecognized: 0, moved: 0 };
  for (const queue of queues.shards) {
    await walkDelayed(sweep, queue, tally);
    await walkWaiting(sweep, queue, tally);
  }
  for (const old of previous) await drainLayout(sweep, old, tally);
  return { scanned, enqueued, ...tally, parkedMoved };
}

/**
 * Queues of every other shard count this deployment has run with, plus the single queue
 * (a deployment from before sharding never recorded it). The current count is recorded
 * first, so a later change finds these queues. A count whose queues hold nothing is
 * cheap to check (four commands per shard), so a layout stays listed until it is empty.
 * Looked at without declaring them: every sweep checks the single queue again, and
 * declaring it wrote its meta hash back each time.
 */
async function previousLayouts({ queues, redis }: Sweep): Promise<RefreshQueues[]> {
  const { layout } = queues;
  await redis.sadd(layout.registryKey, String(layout.count));
  const found: RefreshQueues[] = [];
  for (const count of await otherLayoutCounts(redis, layout)) {
    const old = new RefreshQueues(redis, layout.withCount(count), false);
    if (await holdsAnything(redis, old)) {
      found.push(old);
    } else {
      await forgetLayout(redis, old);
      await old.close();
    }
  }
  return found;
}

/**
 * Removes an empty layout's last keys (a queue's meta hash outlives its jobs, and a process
 * still running with that layout may have written it again) and its registry entry.
 */
async function forgetLayout(redis: RedisClient, old: RefreshQueues): Promise<void> {
  await Promise.all(
    old.shards.map(async (queue) => {
      if ((await redis.exists(queue.toKey("meta"))) > 0) await queue.obliterate();
    }),
  );
  await redis.srem(old.layout.registryKey, String(old.layout.count));
}

async function holdsAnything(redis: RedisClient, old: RefreshQueues): Promise<boolean> {
  const sizes = await Promise.all(
    old.shards.flatMap((queue) => [
      redis.zcard(queue.toKey("delayed")),
      redis.llen(queue.toKey("wait")),
      redis.llen(queue.toKey("active")),
    ]),
  );
  const parked = await new ParkedAnswers(redis, old.layout.keys("parked")).count();
  return parked > 0 || sizes.some((size) => size > 0);
}

/**
 * Moves a previous layout's delayed and waiting jobs into the current shards (or removes
 * them when no row wants them). Jobs a worker holds are left to finish: its write bumps the
 * row's version, which names the next job, so the job the current shards got for the old
 * version does nothing, and a connection is never refreshed twice (its claim in PostgreSQL
 * guards that even while the two layouts' locks differ, ADR 0008). Once the layout holds
 * nothing, its queues' remaining keys go.
 */
async function drainLayout(sweep: Sweep, old: RefreshQueues, tally: Tally): Promise<void> {
  try {
    for (const queue of old.shards) {
      await walkDelayed(sweep, queue, tally, true);
      await walkWaiting(sweep, queue, tally, true);
    }
    if (!(await holdsAnything(sweep.redis, old))) await forgetLayout(sweep.redis, old);
  } finally {
    await old.close();
  }
}

/**
 * Pages worked on while the next is read: reading waits on one server (PostgreSQL for the
 * keyset pages, Redis for the delayed set) and working on the other, so overlapping them
 * keeps both busy. Two are enough for that; more would only queue whole-page scripts in
 * front of other clients' commands (a page's script holds Redis for a few milliseconds).
 */
const PAGES_IN_FLIGHT = 2;

/**
 * Calls `work` on each page `next` returns until it returns undefined, reading ahead while
 * up to PAGES_IN_FLIGHT pages are worked on. Work never rejects unheard: the first failure
 * stops the reading and is thrown once every started page has settled.
 */
async function overlapPages<T>(
  next: () => Promise<T | undefined>,
  work: (page: T) => Promise<void>,
): Promise<void> {
  let failure: { readonly error: unknown } | undefined;
  const inFlight = new Set<Promise<void>>();
  while (!failure) {
    const page = await next();
    if (page === undefined) break;
    const task: Promise<void> = work(page)
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(() => inFlight.delete(task));
    inFlight.add(task);
    if (inFlight.size >= PAGES_IN_FLIGHT) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure.error;
}

async function addMissingJobs(sweep: Sweep) {
  let cursor: string | undefined;
  let scanned = 0;
  let enqueued = 0;
  await overlapPages(
    async () => {
      const page = await readPage(sweep, cursor);
      const last = page.at(-1);
      if (!last) return undefined;
      cursor = last.id;
      scanned += page.length;
      return page;
    },
    async (page) => {
      // Not `enqueued += await …`: that reads the sum before the await, losing other
      // pages' counts added meanwhile.
      const added = await addPageJobs(sweep, page);
      enqueued += added;
    },
  );
  return { scanned, enqueued };
}

/** The next keyset page of rows that should have a job, in id order. */
function readPage({ prisma, batchSize }: Sweep, after: string | undefined) {
  return prisma.connection.findMany({
    where: {
      status: { in: [...REFRESHABLE] },
      nextRefreshAt: { not: null },
      ...(after ? { id: { gt: after } } : {}),
    },
    orderBy: { id: "asc" },
    take: batchSize,
    select: { id: true, version: true, nextRefreshAt: true },
  });
}
type ScheduledRow = Awaited<ReturnType<typeof readPage>>[number];

/**
 * Adds the jobs of a page's rows that have none; returns how many. One script call per
 * shard checks its part of the page and adds the missing delayed jobs (docs/adr/0019): its
 * keys are all that shard's queue's, so on a Redis Cluster they sit in one slot.
 */
async function addPageJobs(
  { queues, redis, now }: Sweep,
  page: readonly ScheduledRow[],
): Promise<number> {
  const at = now();
  const added = await Promise.all(
    [...queues.group(page, (row) => row.id)].map(([queue, rows]) =>
      addJobsIfMissing(
        redis,
        queue,
        rows.map((row) => ({
          id: refreshJobId({ connectionId: row.id, version: row.version }),
          dueAt: (row.nextRefreshAt ?? at).getTime(),
        })),
        at,
      ),
    ),
  );
  return added.reduce((sum, count) => sum + count, 0);
}

/** ZSCAN, not ranks or scores: it sees every member present throughout, while we move some. */
async function walkDelayed(
  sweep: Sweep,
  queue: RefreshQueue,
  tally: Tally,
  move = false,
): Promise<void> {
  let cursor: string | undefined = "0";
  await overlapPages(
    async () => {
      if (cursor === undefined) return undefined;
      const [next, flat] = await sweep.redis.zscan(
        queue.toKey("delayed"),
        cursor,
        "COUNT",
        sweep.batchSize,
      );
      cursor = next === "0" ? undefined : next;
      const entries: QueueEntry[] = [];
      for (let index = 0; index + 1 < flat.length; index += 2) {
        entries.push({
          id: flat[index] ?? "",
          dueAt: Math.floor(Number(flat[index + 1]) / DELAYED_SCORE_PER_MS),
        });
      }
      return entries;
    },
    async (entries) => {
      await settle(sweep, queue, entries, tally, move);
    },
  );
}

/**
 * Pages by index from the head. New jobs are pushed at the head (seen twice: harmless) and
 * workers pop at the tail, so only our own removals shift what follows; a job missed
 * because someone else removed one meanwhile is seen by the next sweep.
 */
async function walkWaiting(
  sweep: Sweep,
  queue: RefreshQueue,
  tally: Tally,
  move = false,
): Promise<void> {
  for (let start = 0; ; ) {
    const ids = await sweep.redis.lrange(queue.toKey("wait"), start, start + sweep.batchSize - 1);
    if (ids.length === 0) return;
    const removed = await settle(
      sweep,
      queue,
      ids.map((id) => ({ id })),
      tally,
      move,
    );
    start += ids.length - removed;
  }
}

/**
 * Looks one page of jobs up in one query, removes the orphans, retimes the mistimed. With
 * `move` (a previous layout's queue), every job a row still wants is queued in its current
 * shard first, then removed here.
 */
async function settle(
  { prisma, queues, now }: Sweep,
  queue: RefreshQueue,
  entries: readonly QueueEntry[],
  tally: Tally,
  move: boolean,
): Promise<number> {
  const jobs: (QueueEntry & RefreshJobPayload)[] = [];
  for (const entry of entries) {
    const payload = parseRefreshJobId(entry.id);
    if (payload) {
      jobs.push({ ...entry, ...payload });
    } else {
      tally.unrecognized += 1;
    }
  }
  if (jobs.length === 0) return 0;
  // Read after Redis: every producer commits a row before it adds the row's job, so a job
  // seen above never meets a row older than itself here.
  const rows = await prisma.connection.findMany({
    where: { id: { in: [...new Set(jobs.map((job) => job.connectionId))] } },
    select: { id: true, version: true, status: true, nextRefreshAt: true },
  });
  const byId = new Map(rows.map((row) => [row.id, row]));
  const at = now().getTime();
  const orphans: string[] = [];
  const mistimed: { id: string; delay: number }[] = [];
  const moving: ReturnType<typeof refreshJob>[] = [];
  for (const job of jobs) {
    const row = byId.get(job.connectionId);
    const due = row?.nextRefreshAt?.getTime();
    if (
      !row ||
      due === undefined ||
      row.version !== job.version ||
      !REFRESHABLE.includes(row.status)
    ) {
      orphans.push(job.id);
    } else if (move) {
      const payload = { connectionId: job.connectionId, version: job.version };
      moving.push(refreshJob(payload, new Date(due), new Date(at)));
    } else if (
      job.dueAt !== undefined &&
      // Both overdue is both due now: a job waiting for a worker is on time.
      Math.abs(Math.max(job.dueAt, at) - Math.max(due, at)) > RETIME_TOLERANCE_MS
    ) {
      mistimed.push({ id: job.id, delay: Math.max(0, due - at) });
    }
  }
  // Queued in the current shard before it leaves the old one: a crash in between leaves a
  // copy the next sweep moves again (an add of an existing id is a no-op), never none.
  if (moving.length > 0) await queues.addBulk(moving);
  // Issued together, these share round trips instead of waiting one by one; in a steady
  // state both lists are empty.
  const removedOnce = (ids: readonly string[]) =>
    Promise.all(ids.map((id) => queue.remove(id))).then(
      (codes) => codes.filter((code) => code === 1).length,
    );
  const [removed, movedOut, retimed] = await Promise.all([
    removedOnce(orphans),
    removedOnce(moving.map(({ opts }) => opts.jobId)),
    Promise.all(mistimed.map(({ id, delay }) => retime(queue, id, delay))),
  ]);
  tally.removed += removed;
  tally.moved += movedOut;
  tally.retimed += retimed.filter(Boolean).length;
  return removed + movedOut;
}

/**
 * A job a worker has started and put back in the delayed set waits for a reason the row
 * does not record: the connection's lock was busy, its integration is cooling down after a
 * 429 (its own or another connection's), or BullMQ is backing off after an exception. That
 * wait, not the row, says when it runs, so only never-started jobs are moved.
 */
async function retime(queue: RefreshQueue, id: string, delay: number): Promise<boolean> {
  const job = await queue.getJob(id);
  if (!job || job.attemptsStarted > 0) return false;
  try {
    await job.changeDelay(delay);
    return true;
  } catch (error) {
    // Promoted, started or removed since the walk saw it: nothing left to move.
    const code = (error as { code?: unknown }).code;
    if (code === ErrorCode.JobNotExist || code === ErrorCode.JobNotInState) return false;
    throw error;
  }
}
