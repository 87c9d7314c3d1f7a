import type { AppName } from "../../test/support/app-process";
import type { AppSlot } from "../fleet";
import { after, type Fault, type FaultContext, type Span, type Started } from "./fault";

/** A running slot of this kind that no other fault holds, now held; null when none is. */
function claimSlot(context: FaultContext, kind: AppName): AppSlot | null {
  const free = context.fleet.slotsOf(kind).filter((slot) => !slot.busy && slot.state === "running");
  if (free.length === 0) return null;
  const slot = context.random.pick(free);
  slot.busy = true;
  return slot;
}

/** Apps that send refresh tokens: one killed or frozen mid-request may lose an answer. */
const SENDERS: readonly AppName[] = ["api", "worker"];

/**
 * Refreshes a process had in flight when it was killed or frozen: sent at most one timeout
 * before (the provider rotates on arrival), answered into a dead or frozen socket. A frozen
 * process sends nothing new, so the span ends there too (plus a second of clock slack).
 */
function inFlightAt(at: number, context: FaultContext): Span {
  return { from: at - context.refreshTimeoutMs - 1_000, to: at + 1_000 };
}

/** SIGKILL, down for 1-5 s, then started again on its port. */
export function killApp(kind: AppName): Fault {
  return {
    kind: `SIGKILL ${kind}`,
    start(context): Started | null {
      const slot = claimSlot(context, kind);
      if (!slot) return null;
      const killedAt = Date.now();
      const downFor = context.random.between(1, 5);
      const end = (async () => {
        await context.fleet.kill(slot);
        await after(downFor);
        context.fleet.start(slot);
        slot.busy = false;
      })();
      return {
        target: slot.name,
        end,
        healthy: () => context.fleet.ready(slot),
        losesAnswers: () => (SENDERS.includes(kind) ? inFlightAt(killedAt, context) : null),
      };
    },
  };
}

/**
 * SIGSTOP for 2-12 s, then SIGCONT: some pauses stay under the lock's lease, some outlast
 * it (a long GC, a frozen VM), so another process takes the connection over.
 */
export function pauseApp(kind: AppName): Fault {
  return {
    kind: `SIGSTOP ${kind}`,
    start(context): Started | null {
      const slot = claimSlot(context, kind);
      if (!slot) return null;
      const pausedAt = Date.now();
      const pauseMs = context.random.between(2, 12) * 1000;
      context.fleet.pause(slot);
      const end = (async () => {
        await after(pauseMs / 1000);
        context.fleet.resume(slot);
        slot.busy = false;
      })();
      return {
        target: `${slot.name} for ${(pauseMs / 1000).toFixed(1)} s`,
        end,
        healthy: () => context.fleet.ready(slot),
        // SPEC §7 promises no reuse for pauses shorter than the lease; a longer one lets
        // another process send the refresh token whose answer the frozen one holds.
        losesAnswers: () =>
          SENDERS.includes(kind) && pauseMs > context.leaseMs
            ? inFlightAt(pausedAt, context)
            : null,
      };
    },
  };
}
