import type { Logger } from "pino";

export interface Shutdown {
  /**
   * Registers something to close on shutdown. Steps run in reverse order of registration,
   * so what was opened last (workers, servers) closes before what it uses (connections).
   * @param timeoutMs this step's limit; defaults to the one given to handleShutdown.
   */
  add(name: string, run: () => Promise<unknown>, timeoutMs?: number): void;
  /** Whether a stop signal came: the process drains, and must get no new work. */
  readonly stopping: () => boolean;
}

/**
 * A signal this soon after the first is the same stop request delivered twice, not an
 * operator insisting. Under `npm start` one Ctrl-C reaches each app from turbo (sent to
 * the task's process group) and again from npm relaying it, about 20-40 ms apart
 * (measured); systemd's default control-group stop does the same with SIGTERM. Exiting on
 * the repeat cut in-flight refreshes, whose rotated tokens were then lost.
 */
const REPEAT_WINDOW_MS = 3_000;

/**
 * Installs SIGTERM and SIGINT handlers at once, so a signal that arrives while the app is
 * still starting closes whatever is open so far. Each step is bounded by `stepTimeoutMs`;
 * the process exits 0 when every step finished, 1 otherwise. A signal more than
 * REPEAT_WINDOW_MS after the first exits at once; one sooner is ignored.
 */
export function handleShutdown(log: Logger, stepTimeoutMs = 10_000): Shutdown {
  const steps: Step[] = [];
  let stoppingSince: number | undefined;

  const stop = async (signal: NodeJS.Signals) => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < REPEAT_WINDOW_MS) {
        log.info({ signal, forceAfterMs: REPEAT_WINDOW_MS }, "already shutting down");
        return;
      }
      log.warn({ signal }, "second signal, exiting now");
      process.exit(1);
    }
    stoppingSince = Date.now();
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
    stopping: () => stoppingSince !== undefined,
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
