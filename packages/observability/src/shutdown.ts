import type { Logger } from "pino";

export interface Shutdown {
  /**
   * Registers something to close on shutdown. Steps run in reverse order of registration,
   * so what was opened last (workers, servers) closes before what it uses (connections).
   * @param timeoutMs this step's limit; defaults to the one given to handleShutdown.
   */
  add(name: string, run: () => Promise<unknown>, timeoutMs?: number): void;
}

/**
 * Installs SIGTERM and SIGINT handlers at once, so a signal that arrives while the app is
 * still starting closes whatever is open so far. Each step is bounded by `stepTimeoutMs`;
 * the process exits 0 when every step finished, 1 otherwise. A second signal exits at once.
 */
export function handleShutdown(log: Logger, stepTimeoutMs = 10_000): Shutdown {
  const steps: Step[] = [];
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
      if (!(await runStep(log, step))) clean = false;
    }
    log.info({ clean }, "stopped");
    process.exit(clean ? 0 : 1);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  return {
    add: (name, run, timeoutMs = stepTimeoutMs) => steps.push({ name, run, timeoutMs }),
  };
}

interface Step {
  readonly name: string;
  readonly run: () => Promise<unknown>;
  readonly timeoutMs: number;
}

async function runStep(log: Logger, step: Step): Promise<boolean> {
  const { timeoutMs } = step;
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
