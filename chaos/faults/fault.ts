import type { MockProvider } from "@evergreen/providers/testing";
import type { PrivateCluster } from "../cluster";
import type { Fleet } from "../fleet";
import type { Member } from "../population";
import type { Random } from "../random";

/** What every fault can reach and record. */
export interface FaultContext {
  readonly fleet: Fleet;
  readonly cluster: PrivateCluster;
  readonly rotating: MockProvider;
  readonly stable: MockProvider;
  readonly members: readonly Member[];
  readonly random: Random;
  /** REFRESH_TIMEOUT_MS the apps run with. */
  readonly refreshTimeoutMs: number;
  /** The connection lock's and claim's lease: 3 × REFRESH_TIMEOUT_MS (ADR 0008). */
  readonly leaseMs: number;
  /** Grants this run revoked at the provider, as users revoking access do. */
  readonly revokedGrants: Set<string>;
  /** Grants whose answer this run dropped after the provider had rotated. */
  readonly droppedGrants: Set<string>;
  /** Components a fault holds (`redis`, `postgres`, a provider's answers): one fault each. */
  readonly busy: Set<string>;
}

/** Runs `act` holding `component`, or returns null when another fault holds it. */
export function holding(
  context: FaultContext,
  component: string,
  act: () => Promise<void>,
): Promise<void> | null {
  if (context.busy.has(component)) return null;
  context.busy.add(component);
  return act().finally(() => context.busy.delete(component));
}

/** A time span in ms since the epoch. */
export interface Span {
  readonly from: number;
  readonly to: number;
}

export interface Started {
  /** What it hit: `worker-2`, `redis`, `rotating provider`, `6 grants`. */
  readonly target: string;
  /** Settles when the fault is undone (restart issued, SIGCONT sent, provider cleared). */
  readonly end: Promise<void>;
  /** The component it hit works again (default: nothing to wait for). */
  readonly healthy?: () => Promise<boolean>;
  /**
   * Provider answers this fault may lose after the provider has rotated (a killed process
   * that was waiting for one, a timeout): a reuse of a token rotated in this span, whose
   * replacement the client never stored, is what the fault does, not a defect. Known once
   * the fault has ended.
   */
  readonly losesAnswers?: () => Span | null;
}

export interface Fault {
  /** A row of the report's table, e.g. `SIGKILL worker`. */
  readonly kind: string;
  /** Starts the fault on a free target, or null when none is free now. */
  start(context: FaultContext): Started | null;
}

/** Resolves after `seconds`, drawn by the caller from the run's seeded generator. */
export function after(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}
