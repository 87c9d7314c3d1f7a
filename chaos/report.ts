import type { Verdict } from "./invariants";
import type { MonitorFigures } from "./monitor";
import type { ReaderFigures } from "./readers";
import type { FaultRecord } from "./timeline";

export interface RunFacts {
  readonly command: string;
  readonly seed: number;
  readonly startedAt: Date;
  readonly faultMinutes: number;
  readonly wallSeconds: number;
  readonly connections: number;
  readonly settings: Readonly<Record<string, string>>;
  readonly recoveryBoundSeconds: number;
  readonly machine: string;
  readonly kinds: readonly string[];
  readonly records: readonly FaultRecord[];
  readonly verdicts: readonly Verdict[];
  readonly monitor: MonitorFigures;
  readonly readers: ReaderFigures;
  readonly statuses: Readonly<Record<string, number>>;
  /** Error-level log lines of the apps, by kind and message. */
  readonly errorLines: ReadonlyMap<string, number>;
}

/** The p-th percentile (nearest rank) of sorted values. */
function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const seconds = (ms: number | undefined) => (ms === undefined ? "–" : (ms / 1000).toFixed(1));

export function faultTable(kinds: readonly string[], records: readonly FaultRecord[]): string[] {
  const lines = [
    "| fault | injected | recovered | recovery p50 (s) | recovery p99 (s) |",
    "|---|---:|---:|---:|---:|",
  ];
  for (const kind of kinds) {
    const mine = records.filter((record) => record.kind === kind);
    const times = mine
      .flatMap((record) =>
        record.recoveredAt !== null && record.endedAt !== null
          ? [record.recoveredAt - record.endedAt]
          : [],
      )
      .sort((a, b) => a - b);
    lines.push(
      `| ${kind} | ${mine.length} | ${times.length} | ${seconds(percentile(times, 50))} | ${seconds(percentile(times, 99))} |`,
    );
  }
  return lines;
}

export function renderReport(facts: RunFacts): string {
  const holds = facts.verdicts.every((verdict) => verdict.holds);
  const settings = Object.entries(facts.settings)
    .map(([name, value]) => `\`${name}=${value}\``)
    .join(", ");
  const statuses = Object.entries(facts.statuses)
    .map(([status, count]) => `${status} ${count}`)
    .join(", ");
  const reads = Object.entries(facts.readers.byStatus)
    .map(([status, count]) => `${status}: ${count}`)
    .join(", ");
  return [
    "# Chaos run",
    "",
    `- Command: \`${facts.command}\``,
    `- Seed: ${facts.seed} (replays the fault plan and the population; not the apps' own timing)`,
    `- Date: ${facts.startedAt.toISOString()}; faults for ${facts.faultMinutes} min, ${facts.wallSeconds.toFixed(0)} s in all`,
    `- Machine: ${facts.machine}`,
    `- Setup: 2 api, 2 schedulers, 3 workers; ${facts.connections} connections, lifetimes 50–120 s, 40% at a rotating provider without reuse grace (Box), 10% at one with it (Xero, 30 min), half at a provider that does not rotate; private PostgreSQL and Redis`,
    `- Settings: ${settings}`,
    `- Recovery bound: ${facts.recoveryBoundSeconds} s after a fault ends (expiries inside a fault or this bound after it are excused, and counted)`,
    `- Verdict: **${holds ? "every invariant holds" : "INVARIANT FAILED"}**`,
    "",
    "## Faults",
    "",
    "Recovered: after the fault was undone, its component answered healthy and no connection",
    "was more than 5 s past its `nextRefreshAt` (overlapping faults lengthen each other's time).",
    "A revoked grant recovers when its connection shows `needs_reauth`, at its next refresh.",
    "",
    ...faultTable(facts.kinds, facts.records),
    "",
    "## Invariants",
    "",
    "| invariant | value | holds |",
    "|---|---|---|",
    ...facts.verdicts.map(
      (verdict) => `| ${verdict.name} | ${verdict.value} | ${verdict.holds ? "yes" : "**no**"} |`,
    ),
    "",
    ...facts.verdicts.flatMap((verdict) =>
      verdict.details.length === 0
        ? []
        : [`${verdict.name}:`, ...verdict.details.map((line) => `- ${line}`), ""],
    ),
    "## Figures",
    "",
    `- Connections at the end: ${statuses}`,
    `- Token reads: ${facts.readers.requests} (${reads}); ${facts.readers.served} tokens served`,
    `- Overdue samples: ${facts.monitor.samples}, database unreachable in ${facts.monitor.unreachable}, at most ${facts.monitor.maxOverdue} connections overdue at once`,
    "",
    "Error-level log lines of the apps (outages are expected to log some):",
    "",
    ...[...facts.errorLines]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 25)
      .map(([line, count]) => `- ${count} × ${line}`),
    "",
    "## Timeline",
    "",
    "| fault | target | start | undone after (s) | recovered after (s) |",
    "|---|---|---|---:|---:|",
    ...facts.records.map(
      (record) =>
        `| ${record.kind} | ${record.target} | ${new Date(record.startedAt).toISOString().slice(11, 23)} | ` +
        `${record.endedAt === null ? "–" : seconds(record.endedAt - record.startedAt)} | ` +
        `${record.recoveredAt === null || record.endedAt === null ? "–" : seconds(record.recoveredAt - record.endedAt)} |`,
    ),
    "",
  ].join("\n");
}
