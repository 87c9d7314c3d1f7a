import type { LivenessCheck } from "@evergreen/observability";
import type { RedisClient } from "@evergreen/redis";
import type { Worker } from "bullmq";

export interface ConsumerLiveness {
  /** For the ops server's `/healthz`. */
  readonly check: LivenessCheck;
  /** Closes the workers side by side as part of shutdown: draining is what a live worker does then. */
  close(): Promise<void>;
}

/**
 * A worker process whose BullMQ consumers have stopped still answers HTTP, so `/healthz`
 * must look at each consumer (refreshes, webhooks): its run loop ended (BullMQ stops it on
 * an error it cannot recover from), something closed it outside shutdown, or their Redis
 * connection ended for good (ioredis gave up reconnecting). An orchestrator then restarts
 * the process.
 */
export function consumerLiveness(
  workers: Readonly<Record<string, Worker>>,
  connection: RedisClient,
): ConsumerLiveness {
  let shuttingDown = false;
  const named = Object.entries(workers);
  return {
    check: () => {
      if (shuttingDown) return undefined;
      for (const [name, worker] of named) {
        if (worker.closing) return `${name} consumer closed`;
        if (!worker.isRunning()) return `${name} consumer stopped`;
      }
      if (connection.status === "end") return "consumer Redis connection ended";
      return undefined;
    },
    close: async () => {
      shuttingDown = true;
      await Promise.all(named.map(([, worker]) => worker.close()));
    },
  };
}
