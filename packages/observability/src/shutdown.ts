import type { Logger } from "pino";

export interface ShutdownStep {
  readonly name: string;
  readonly run: () => Promise<unknown>;
}

/**
 * On SIGTERM or SIGINT, runs the steps in order (workers, then servers, then
 * connections), each bounded by `stepTimeoutMs`, then exits: 0 when every step finished,
 * 1 otherwise. A second signal exits at once.
 */
export function exitOnSignals(
  log: Logger,
  steps: readonly ShutdownStep[],
  stepTimeoutMs = 10_000,
): void {
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, "second signal, exiting now");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, "shutting down");
    let clean = true;
    for (const step of steps) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), stepTimeoutMs);
      });
      try {
        const result = await Promise.race([step.run(), timeout]);
        if (result === "timeout") {
          clean = false;
          log.error({ step: step.name, timeoutMs: stepTimeoutMs }, "shutdown step timed out");
        }
      } catch (err) {
        clean = false;
        log.error({ step: step.name, err }, "shutdown step failed");
      } finally {
        clearTimeout(timer);
      }
    }
    log.info({ clean }, "stopped");
    process.exit(clean ? 0 : 1);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
