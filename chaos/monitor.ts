import { setTimeout as delay } from "node:timers/promises";
import type { ChaosDatabase } from "./database";
import type { FaultRecord } from "./timeline";

export interface MonitorFigures {
  samples: number;
  /** Samples the database did not answer (PostgreSQL down). */
  unreachable: number;
  maxOverdue: number;
}

/**
 * Once a second: how many connections are overdue, and which ended faults have recovered
 * (their component healthy again and nothing overdue).
 */
export class Monitor {
  readonly figures: MonitorFigures = { samples: 0, unreachable: 0, maxOverdue: 0 };
  lastOverdue: number | null = null;

  constructor(
    private readonly db: ChaosDatabase,
    private readonly records: readonly FaultRecord[],
  ) {}

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.tick();
      await delay(1_000, undefined, { signal }).catch(() => {});
    }
  }

  async tick(): Promise<void> {
    const overdue = await this.db.overdue();
    const at = Date.now();
    this.lastOverdue = overdue;
    this.figures.samples += 1;
    if (overdue === null) this.figures.unreachable += 1;
    else this.figures.maxOverdue = Math.max(this.figures.maxOverdue, overdue);
    if (overdue !== 0) return;
    for (const record of this.records) {
      // Ended before this sample was taken: a sample is evidence only for what precedes it.
      if (record.endedAt === null || record.endedAt > at || record.recoveredAt !== null) continue;
      if (await record.healthy()) record.recoveredAt = at;
    }
  }

  /** Every fault has ended and recovered. */
  settled(): boolean {
    return this.records.every((record) => record.recoveredAt !== null);
  }
}
