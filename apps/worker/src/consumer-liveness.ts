import type { LivenessCheck } from "@evergreen/observability";
import type { Worker } from "bullmq";
import type { Redis } from "ioredis";

export interface ConsumerLiveness {
  /** For the ops server's `/healthz`. */
  readonly check: LivenessCheck;
  /** Closes the worker as part of shutdown: draining is what a live worker does then. */
  close(): Promise<void>;
}

/**
 * A worker process whose BullMQ consumer has stopped still answers HTTP, so `/healthz`
 * must look at the consumer: its run loop ended (BullMQ stops it on an error it cannot
 * recover from), something closed it outside shutdown, or its Redis connection ended for
 * good (ioredis gave up reconnecting). An orchestrator then restarts the process.
 */
export function consumerLiveness(worker: Worker, connection: Redis): ConsumerLiveness {
  let shuttingDown = false;
  return {
    check: () => {
      if (shuttingDown) return undefined;
      if (worker.closing) return "refresh consumer closed";
      if (!worker.isRunning()) return "refresh consumer stopped";
      if (connection.status === "end") return "consumer Redis connection ended";
      return undefined;
    },
    close: () => {
      shuttingDown = true;
      return worker.close();
    },
  };
}
