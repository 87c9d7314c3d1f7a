import type { RedisClient } from "@evergreen/redis";
import type { JobsOptions } from "bullmq";
import { addJobsIfMissing, type DelayedJobEntry } from "./add-delayed-jobs";
import {
  createRefreshQueue,
  parseRefreshJobId,
  REFRESH_JOB,
  type RefreshJobData,
  type RefreshQueue,
} from "./jobs";
import { MicroBatcher } from "./micro-batcher";
import { RefreshLayout } from "./shards";

/** A refresh job to add: its id (`<connectionId>.<version>`) says its shard. */
interface RefreshJobToAdd {
  readonly name: string;
  readonly data: RefreshJobData;
  readonly opts: JobsOptions & { readonly jobId: string };
}

/**
 * The refresh queue, one BullMQ queue per shard (REFRESH_QUEUE_SHARDS). Producers add and
 * remove jobs as on one queue: each job goes to its connection's shard (RefreshLayout).
 * Consumers and the sweep reach each shard's queue through `shards`.
 */
export class RefreshQueues {
  readonly layout: RefreshLayout;
  /** Index = shard; each a compact queue (createRefreshQueue). */
  readonly shards: readonly RefreshQueue[];

  /**
   * Delayed jobs added in the same turn of the event loop (a worker stores hundreds of
   * refreshes at once, each scheduling its next one) go in one script call per shard
   * (add-delayed-jobs.ts, as the sweep adds them) instead of one BullMQ script each, whose
   * arguments the worker packs one job at a time.
   */
  readonly #delayed = new MicroBatcher<DelayedJobEntry, true>(
    (entry) => entry.id,
    (entries) => this.#addDelayed(entries),
  );

  readonly #redis: RedisClient;

  /** @param declare false for a layout only looked at: see createRefreshQueue. */
  constructor(redis: RedisClient, layout: RefreshLayout = new RefreshLayout(1), declare = true) {
    this.#redis = redis;
    this.layout = layout;
    this.shards = layout.prefixes.map((prefix) => createRefreshQueue(redis, prefix, declare));
  }

  /** The queue of a connection's shard. */
  of(connectionId: string): RefreshQueue {
    const queue = this.shards[this.layout.shardOf(connectionId)];
    if (!queue) throw new Error("refresh queue shard out of range");
    return queue;
  }

  /** A job's data is empty (docs/adr/0018): its id names the connection, and so the shard. */
  async add(name: string, data: RefreshJobData, opts: RefreshJobToAdd["opts"]): Promise<void> {
    const { jobId, delay = 0, ...other } = opts;
    // The script writes exactly what refreshJob() makes: a delayed job, no data, no options.
    const compact =
      name === REFRESH_JOB && Object.keys(data).length === 0 && Object.keys(other).length === 0;
    if (compact && delay > 0) await this.#delayed.submit({ id: jobId, dueAt: Date.now() + delay });
    else await this.ofJob(jobId).add(name, data, opts);
  }

  /** As BullMQ's add: a job whose id exists, in any state, is left as it is. */
  async #addDelayed(entries: readonly DelayedJobEntry[]): Promise<ReadonlyMap<string, true>> {
    const byShard = this.group(entries, (entry) => connectionOfJob(entry.id));
    const now = new Date();
    await Promise.all(
      [...byShard].map(([queue, shardEntries]) =>
        addJobsIfMissing(this.#redis, queue, shardEntries, now),
      ),
    );
    return new Map(entries.map((entry) => [entry.id, true]));
  }

  /** One addBulk per shard, side by side. */
  async addBulk(jobs: readonly RefreshJobToAdd[]): Promise<void> {
    const byShard = this.group(jobs, (job) => connectionOfJob(job.opts.jobId));
    await Promise.all([...byShard].map(([queue, shardJobs]) => queue.addBulk(shardJobs)));
  }

  /** `items` by the queue of their connection's shard. */
  group<T>(items: readonly T[], connectionOf: (item: T) => string): Map<RefreshQueue, T[]> {
    const byShard = new Map<RefreshQueue, T[]>();
    for (const item of items) {
      const queue = this.of(connectionOf(item));
      const list = byShard.get(queue);
      if (list) list.push(item);
      else byShard.set(queue, [item]);
    }
    return byShard;
  }

  /** The queue of the shard a job id we made belongs to. */
  private ofJob(jobId: string): RefreshQueue {
    return this.of(connectionOfJob(jobId));
  }

  /** BullMQ's answer (1 removed, 0 absent or held by a worker); 0 for an id we never make. */
  async remove(jobId: string): Promise<number> {
    const payload = parseRefreshJobId(jobId);
    return payload ? this.of(payload.connectionId).remove(jobId) : 0;
  }

  async getJob(jobId: string) {
    const payload = parseRefreshJobId(jobId);
    return payload ? this.of(payload.connectionId).getJob(jobId) : undefined;
  }

  on(event: "error", listener: (err: Error) => void): this {
    for (const queue of this.shards) queue.on(event, listener);
    return this;
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((queue) => queue.close()));
  }
}

function connectionOfJob(jobId: string): string {
  const payload = parseRefreshJobId(jobId);
  if (!payload) throw new Error("not a refresh job id");
  return payload.connectionId;
}
