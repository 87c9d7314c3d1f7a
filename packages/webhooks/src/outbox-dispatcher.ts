import type { PrismaClient } from "@evergreen/db";
import { ClientErrorLog, type Logger } from "@evergreen/observability";
import type { Queue } from "bullmq";
import { type DeliveryJobPayload, deliveryJob } from "./jobs";

export interface DispatcherOptions {
  readonly prisma: PrismaClient;
  readonly queue: Queue<DeliveryJobPayload>;
  readonly log: Logger;
  /** Outbox rows fanned out per statement. @defaultValue 200 */
  readonly batchSize?: number;
  /** How long deliveries are retried after their event. @defaultValue 3 days */
  readonly retryWindowMs?: number;
  /**
   * A pending delivery due this long ago with no live claim has lost its job (a crash
   * between commit and enqueue, Redis losing keys): the repair sweep enqueues it again.
   * @defaultValue 30000
   */
  readonly repairAfterMs?: number;
  /** Pause between runs when the outbox was empty. @defaultValue 1000 */
  readonly pollMs?: number;
  /** Runs between repair sweeps. @defaultValue 30 */
  readonly repairEvery?: number;
}

type Due = { id: string; attempts: number };

/**
 * Moves events from the transactional outbox to the delivery queue. Every worker runs
 * one; they never fan out one event twice, because each batch is claimed with
 * `FOR UPDATE SKIP LOCKED` and deleted from the outbox in the statement that creates its
 * deliveries, and the jobs they enqueue are named after the delivery and attempt, which
 * BullMQ dedupes. A process that dies after that statement commits and before its jobs
 * are in Redis leaves pending deliveries without a job: the repair sweep, in any worker,
 * enqueues them. Design: docs/adr/0011.
 */
export class OutboxDispatcher {
  readonly #options: DispatcherOptions;
  #stopped = false;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;

  constructor(options: DispatcherOptions) {
    this.#options = options;
  }

  /**
   * Fans out one batch of outbox rows to the endpoints subscribed to them; returns how many
   * events it took. Events no endpoint wants leave the outbox too (the feed keeps them).
   */
  async dispatchOnce(now = new Date()): Promise<number> {
    const { prisma, queue } = this.#options;
    const windowMs = this.#options.retryWindowMs ?? 3 * 24 * 3600 * 1000;
    const [result] = await prisma.$queryRaw<{ taken: number; deliveries: Due[] }[]>`
      WITH taken AS (
        DELETE FROM webhook_outbox
         WHERE id IN (SELECT id FROM webhook_outbox ORDER BY id
                       LIMIT ${this.#options.batchSize ?? 200} FOR UPDATE SKIP LOCKED)
        RETURNING "eventId"
      ), created AS (
        INSERT INTO webhook_deliveries (id, "endpointId", "eventId", "nextAttemptAt", "giveUpAt")
        SELECT gen_random_uuid(), e.id, ev.id, now(),
               ev."createdAt" + make_interval(secs => ${windowMs / 1000}::float8)
          FROM taken t
          JOIN webhook_events ev ON ev.id = t."eventId"
          JOIN webhook_endpoints e ON e."disabledAt" IS NULL AND ev.type = ANY (e.events)
        ON CONFLICT ("endpointId", "eventId") DO NOTHING
        RETURNING id, attempts
      )
      SELECT (SELECT count(*) FROM taken)::int AS taken,
             coalesce((SELECT json_agg(created) FROM created), '[]') AS deliveries`;
    const deliveries = result?.deliveries ?? [];
    if (deliveries.length > 0) await queue.addBulk(deliveries.map((row) => job(row, now, now)));
    return result?.taken ?? 0;
  }

  /**
   * Enqueues pending deliveries that are overdue and unclaimed: their job was lost. An
   * attempt whose job still waits in Redis is not added twice (same job id).
   */
  async repair(now = new Date()): Promise<number> {
    const { prisma, queue } = this.#options;
    const due = await prisma.$queryRaw<(Due & { nextAttemptAt: Date })[]>`
      SELECT id, attempts, "nextAttemptAt" FROM webhook_deliveries
       WHERE status = 'pending'
         AND "nextAttemptAt" <= ${new Date(now.getTime() - (this.#options.repairAfterMs ?? 30_000))}
         AND ("claimExpiresAt" IS NULL OR "claimExpiresAt" <= now())
       ORDER BY "nextAttemptAt" LIMIT 1000`;
    if (due.length > 0) await queue.addBulk(due.map((row) => job(row, row.nextAttemptAt, now)));
    return due.length;
  }

  /** Dispatches until stopped: at once while the outbox has rows, else every `pollMs`. */
  start(): void {
    if (this.#loop) return;
    this.#loop = this.#run();
  }

  /** Stops the loop after the batch in flight; its jobs are enqueued first. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { log, pollMs = 1_000, repairEvery = 30 } = this.#options;
    // An outage fails every poll: one line per window, not one a second per worker.
    const failures = new ClientErrorLog(log);
    for (let run = 0; !this.#stopped; run += 1) {
      let busy = false;
      try {
        if (run % repairEvery === 0) await this.repair();
        busy = (await this.dispatchOnce()) > 0;
      } catch (err) {
        // PostgreSQL or Redis away: the outbox keeps its rows, the next run takes them.
        failures.report("webhook dispatcher", err, "webhook dispatch failed; retrying");
      }
      if (!busy && !this.#stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }
}

function job(row: Due, at: Date, now: Date) {
  return deliveryJob({ deliveryId: row.id, attempt: row.attempts }, at, now);
}
