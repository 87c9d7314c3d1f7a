import { setMaxListeners } from "node:events";
import { setTimeout as delay } from "node:timers/promises";
import { isNotConnectionError, type Job, type Processor, Worker, type WorkerOptions } from "bullmq";

/**
 * How long a consumer waits after fetching or finishing a job failed on Redis before
 * trying again. BullMQ's default for a lost connection, 15 s, suits a Redis that is away
 * for long; on a cluster a primary's death ends with its replica's promotion in seconds,
 * after which a consumer still sat out up to 15 s per failed command. On a standalone Redis
 * that is down, commands wait in ioredis's offline queue instead.
 */
export const RUN_RETRY_DELAY_MS = 1_000;

/**
 * A BullMQ worker that also waits after Redis refuses to hand it a job. BullMQ waits
 * `runRetryDelay` after a lost connection but fetched again at once after an error reply
 * to the script that moves a job to active (OOM at maxmemory, READONLY on a demoted
 * primary): a consumer with a backlog against a full Redis spun on it, about 10,000 refused
 * scripts a second and a core busy, making the full Redis busier still. (An idle consumer
 * blocks on BZPOPMIN first, which a full Redis still serves; BullMQ itself waits 100 ms
 * after an error there.) Closing ends the wait.
 */
export class Consumer<Data = unknown, Result = unknown> extends Worker<Data, Result, string> {
  readonly #closing = new AbortController();

  constructor(queue: string, processor: Processor<Data, Result, string>, options: WorkerOptions) {
    super(queue, processor, { runRetryDelay: RUN_RETRY_DELAY_MS, ...options });
    // Every job in flight may wait at once (a failed job's next fetch waits too).
    setMaxListeners(0, this.#closing.signal);
  }

  protected override async moveToActive(token: string, name?: string): Promise<Job<Data, Result>> {
    try {
      return await super.moveToActive(token, name);
    } catch (error) {
      if (error instanceof Error && isNotConnectionError(error)) {
        await delay(this.opts.runRetryDelay, undefined, { signal: this.#closing.signal }).catch(
          () => undefined,
        );
      }
      throw error;
    }
  }

  override close(force?: boolean): Promise<void> {
    this.#closing.abort();
    return super.close(force);
  }
}
