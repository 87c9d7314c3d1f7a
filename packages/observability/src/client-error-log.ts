import type { Logger } from "pino";

/** Anything that emits `error` events: ioredis clients, BullMQ queues and workers. */
export interface ErrorSource {
  on(event: "error", listener: (err: Error) => void): unknown;
}

export interface ClientErrorLogOptions {
  /** One line per error code within this window; the rest are counted. @defaultValue 30000 */
  readonly windowMs?: number;
  /** Clock, for tests. @defaultValue Date.now */
  readonly now?: () => number;
}

/**
 * Logs the `error` events of long-lived clients as JSON lines, at most one per error code
 * per window, each with how many of that code it suppressed since the last line. While
 * Redis is down every client reports every reconnect attempt: a BullMQ queue with no
 * listener printed each as a multi-line dump on stderr, and a listener that logs them all
 * buries everything else.
 */
export class ClientErrorLog {
  readonly #log: Logger;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, { loggedAt: number; suppressed: number }>();

  constructor(log: Logger, options: ClientErrorLogOptions = {}) {
    this.#log = log;
    this.#windowMs = options.windowMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  /** Routes `source`'s errors here; `client` names it in the log line. */
  watch(client: string, source: ErrorSource): void {
    source.on("error", (err) => this.report(client, err));
  }

  /**
   * Logs `err` under `msg` (with `fields`) unless an error of its code was logged under the
   * same `msg` within the window. Jobs that fail on an outage come here too: one line per
   * job, thousands a second at scale, buried everything else.
   */
  report(
    client: string,
    err: unknown,
    msg = "redis client error",
    fields: Record<string, unknown> = {},
  ): void {
    const code = errorCode(err);
    // Without a code, the message stands in: ioredis's "Connection is closed." has none.
    const key = `${msg}\0${code ?? (err instanceof Error ? err.message : String(err))}`;
    const now = this.#now();
    const seen = this.#seen.get(key);
    if (seen !== undefined && now - seen.loggedAt < this.#windowMs) {
      seen.suppressed += 1;
      return;
    }
    this.#seen.set(key, { loggedAt: now, suppressed: 0 });
    this.#log.error(
      { ...fields, client, code, err, suppressed: seen?.suppressed ?? 0, windowMs: this.#windowMs },
      msg,
    );
  }
}

function errorCode(err: unknown): string | undefined {
  const { code } = (err ?? {}) as { code?: unknown };
  return typeof code === "string" || typeof code === "number" ? String(code) : undefined;
}
