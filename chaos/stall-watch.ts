import type { Span } from "./faults";

const TICK_MS = 50;
/** Answers the provider writes while catching up after a stall are as late as the stall. */
const CATCH_UP_MS = 500;

/**
 * The mock providers answer from this process. While its event loop is stalled (the box
 * saturated by a recovery burst, this process parsing a flood of app log lines), every
 * answer waits, as a slow provider's would; one that waits past the client's timeout is
 * lost after the provider has rotated, which is what the injected latency fault does. Such
 * stalls are recorded, logged and judged like that fault (ADR 0022): a rotation inside one
 * may be lost by the test rig, not by the system. Only stalls of at least half the client's
 * timeout count; the report says how many answers each excused.
 */
export class StallWatch {
  readonly stalls: Span[] = [];
  readonly #minimumMs: number;
  readonly #log: (line: string) => void;
  #timer: NodeJS.Timeout | null = null;

  constructor(minimumMs: number, log: (line: string) => void) {
    this.#minimumMs = minimumMs;
    this.#log = log;
  }

  start(): void {
    let last = Date.now();
    this.#timer = setInterval(() => {
      const now = Date.now();
      const stalledMs = now - last - TICK_MS;
      last = now;
      if (stalledMs < this.#minimumMs) return;
      this.stalls.push({ from: now - stalledMs, to: now + CATCH_UP_MS });
      this.#log(
        `chaos: ${new Date(now).toISOString()} this process (the mock providers) stalled ${stalledMs} ms`,
      );
    }, TICK_MS);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
