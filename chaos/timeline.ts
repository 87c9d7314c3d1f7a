import type { Span } from "./faults";

/** One injected fault, from start to recovery. Times in ms since the epoch. */
export interface FaultRecord {
  readonly kind: string;
  readonly target: string;
  readonly startedAt: number;
  /** When it was undone; null while in progress. */
  endedAt: number | null;
  /** First moment after its end when its component was healthy and nothing was overdue. */
  recoveredAt: number | null;
  /** Rotations in this span may have lost their answer by design (see Started). */
  losesAnswers: Span | null;
  readonly healthy: () => Promise<boolean>;
}

export function within(at: number, span: Span): boolean {
  return at >= span.from && at <= span.to;
}
