import { setTimeout as delay } from "node:timers/promises";
import { type AppName, type AppProcess, startApp } from "../test/support/app-process";

export type AppState = "running" | "paused" | "killed";

/** One app process slot: a fixed port, and the process currently in it. */
export interface AppSlot {
  /** e.g. `worker-2`. */
  readonly name: string;
  readonly kind: AppName;
  /** The api's PORT, or the worker's or scheduler's METRICS_PORT (/healthz, /readyz). */
  readonly port: number;
  process: AppProcess | null;
  state: AppState;
  /** Held by a fault: no other fault picks this slot meanwhile. */
  busy: boolean;
}

export const FLEET_SHAPE: Readonly<Record<AppName, number>> = { api: 2, scheduler: 2, worker: 3 };

/**
 * The real apps (`node --import tsx apps/<name>/src/main.ts`, what `npm run start:<name>`
 * runs), each on its own fixed port so a restarted one is found where it was.
 */
export class Fleet {
  readonly slots: AppSlot[] = [];
  /** Every process started, with its slot's name, killed ones included (their logs). */
  readonly #started: { name: string; process: AppProcess }[] = [];

  constructor(
    readonly env: Readonly<Record<string, string>>,
    firstPort: number,
  ) {
    let port = firstPort;
    for (const [kind, count] of Object.entries(FLEET_SHAPE) as [AppName, number][]) {
      for (let i = 1; i <= count; i += 1) {
        this.slots.push({
          name: `${kind}-${i}`,
          kind,
          port: port++,
          process: null,
          state: "killed",
          busy: false,
        });
      }
    }
  }

  slotsOf(kind: AppName): AppSlot[] {
    return this.slots.filter((slot) => slot.kind === kind);
  }

  /** Starts every slot and waits until each answers /readyz. */
  async startAll(timeoutMs: number): Promise<void> {
    for (const slot of this.slots) this.start(slot);
    await Promise.all(this.slots.map((slot) => this.waitReady(slot, timeoutMs)));
  }

  start(slot: AppSlot): void {
    const portVariable = slot.kind === "api" ? "PORT" : "METRICS_PORT";
    slot.process = startApp(slot.kind, { ...this.env, [portVariable]: String(slot.port) });
    this.#started.push({ name: slot.name, process: slot.process });
    slot.state = "running";
  }

  async kill(slot: AppSlot): Promise<void> {
    const child = slot.process;
    slot.state = "killed";
    slot.process = null;
    if (!child) return;
    child.child.kill("SIGKILL");
    await child.exited;
  }

  pause(slot: AppSlot): void {
    slot.process?.child.kill("SIGSTOP");
    slot.state = "paused";
  }

  resume(slot: AppSlot): void {
    slot.process?.child.kill("SIGCONT");
    slot.state = "running";
  }

  /** /readyz answers 200: its database and Redis are reachable, and it serves. */
  async ready(slot: AppSlot): Promise<boolean> {
    if (slot.state !== "running") return false;
    try {
      const answer = await fetch(`http://127.0.0.1:${slot.port}/readyz`, {
        signal: AbortSignal.timeout(2_000),
      });
      await answer.arrayBuffer();
      return answer.ok;
    } catch {
      return false;
    }
  }

  async waitReady(slot: AppSlot, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.ready(slot))) {
      if (slot.process && slot.process.child.exitCode !== null) {
        throw new Error(`${slot.name} exited at start:\n${slot.process.stderr()}`);
      }
      if (Date.now() > deadline) throw new Error(`${slot.name} not ready in ${timeoutMs} ms`);
      await delay(250);
    }
  }

  /** Ends every process (a paused one is resumed first, so it can die). */
  async stopAll(): Promise<void> {
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.state === "paused") this.resume(slot);
        await this.kill(slot);
      }),
    );
  }

  /**
   * Error and fatal log lines of every process, counted by app kind and
   * message, e.g. `api: request failed (Connection is closed.)`.
   */
  errorLines(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { name, process } of this.#started) {
      for (const line of process.logs) {
        if (line.level !== "error" && line.level !== "fatal") continue;
        const err = line.err as { message?: string } | undefined;
        // Prisma's messages open with a call site; PostgreSQL's own words come last.
        const said = err?.message?.trim().split("\n").at(-1)?.slice(0, 200);
        const key = `${name.replace(/-\d+$/, "")}: ${String(line.msg)}${said ? ` (${said})` : ""}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    return counts;
  }

  /** Every log line of every process started, as JSON lines naming the process. */
  logLines(): string {
    return this.#started
      .flatMap(({ name, process }) =>
        process.logs.map((line) => `${JSON.stringify({ process: name, ...line })}\n`),
      )
      .join("");
  }

  /** Processes that exited on their own (a crash, not a fault): their stderr. */
  crashed(): string[] {
    return this.slots
      .filter((slot) => slot.process?.child.exitCode != null)
      .map((slot) => `${slot.name}: ${slot.process?.stderr().slice(-2_000)}`);
  }
}
