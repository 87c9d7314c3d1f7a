import type { ConnectionOptions, JobsOptions, Queue } from "bullmq";
import { createRefreshQueue, parseRefreshJobId, type RefreshJobPayload } from "./jobs";
import { RefreshLayout } from "./shards";

interface BulkJob {
  readonly name: string;
  readonly data: RefreshJobPayload;
  readonly opts?: JobsOptions;
}

/**
 * The refresh queue, one BullMQ queue per shard (REFRESH_QUEUE_SHARDS). Producers add and
 * remove jobs as on one queue: each job goes to its connection's shard (RefreshLayout).
 * Consumers and the sweep reach each shard's queue through `shards`.
 */
export class RefreshQueues {
  readonly layout: RefreshLayout;
  /** Index = shard. */
  readonly shards: readonly Queue<RefreshJobPayload>[];

  constructor(connection: ConnectionOptions, layout: RefreshLayout = new RefreshLayout(1)) {
    this.layout = layout;
    this.shards = layout.prefixes.map((prefix) => createRefreshQueue(connection, prefix));
  }

  /** The queue of a connection's shard. */
  of(connectionId: string): Queue<RefreshJobPayload> {
    const queue = this.shards[this.layout.shardOf(connectionId)];
    if (!queue) throw new Error("refresh queue shard out of range");
    return queue;
  }

  async add(name: string, data: RefreshJobPayload, opts?: JobsOptions): Promise<void> {
    await this.of(data.connectionId).add(name, data, opts);
  }

  /** One addBulk per shard, side by side. */
  async addBulk(jobs: readonly BulkJob[]): Promise<void> {
    const byShard = this.group(jobs, (job) => job.data.connectionId);
    await Promise.all([...byShard].map(([queue, shardJobs]) => queue.addBulk(shardJobs)));
  }

  /** `items` by the queue of their connection's shard. */
  group<T>(
    items: readonly T[],
    connectionOf: (item: T) => string,
  ): Map<Queue<RefreshJobPayload>, T[]> {
    const byShard = new Map<Queue<RefreshJobPayload>, T[]>();
    for (const item of items) {
      const queue = this.of(connectionOf(item));
      const list = byShard.get(queue);
      if (list) list.push(item);
      else byShard.set(queue, [item]);
    }
    return byShard;
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
