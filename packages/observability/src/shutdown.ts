import type { Logger } from "pino";

export interface Shutdown {
  /**
   * Registers something to close on shutdown. Steps run in reverse order of registration,
   * so what was opened last (workers, servers) closes before what it uses (connections).
   */
  add(name: string, run: () => Promise<unknown>): void;
}

/**
 * Installs SIGTERM and SIGINT handlers at once, so a signal that arrives while the app is
 * still starting closes whatever is open so far. Each step is bounded by `stepTimeoutMs`;
 * the process exits 0 when every step finished, 1 otherwise. A second signal exits at once.
 */
export function handleShutdown(log: Logger, stepTimeoutMs = 10_000): Shutdown {
  const steps: { name: string; run: () => Promise<unknown> }[] = [];
  let stopping = false;

  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, "second signal, exiting now");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, "shutting down");
    let clean = true;
    for (const step of steps.toReversed()) {
      if (!(await runStep(log, step, stepTimeoutMs))) clean = false;
    }
    log.info({ clean }, "stopped");
    process.exit(clean ? 0 : 1);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  return { add: (name, run) => steps.push({ name, run }) };
}

async function runStep(
  log: Logger,
  step: { name: string; run: () => Promise<unknown> },
  timeoutMs: number,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    if ((await Promise.race([step.run(), timeout])) !== "timeout") return true;
    log.error({ step: step.name, timeoutMs }, "shutdown step timed out");
  } catch (err) {
    log.error({ step: step.name, err }, "shutdown step failed");
  } finally {
    clearTimeout(timer);
  }
  return false;
}
