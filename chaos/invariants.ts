import type { MockProvider, TokenLapse, TokenReuse } from "@evergreen/providers/testing";
import type { ConnectionRow } from "./database";
import { GRANT_FAULTS, POSTGRES_FAULT, REDIS_FAULTS, type Span } from "./faults";
import type { Member } from "./population";
import type { BadToken } from "./readers";
import { type FaultRecord, within } from "./timeline";

export interface Verdict {
  readonly name: string;
  readonly holds: boolean;
  /** The figure, e.g. `0 of 41 reuses unexplained`. */
  readonly value: string;
  /** What was excused and why, and every violation with its connection. */
  readonly details: string[];
}

export interface Evidence {
  readonly records: readonly FaultRecord[];
  readonly members: readonly Member[];
  readonly providers: readonly MockProvider[];
  readonly rows: ReadonlyMap<string, ConnectionRow>;
  /** Refreshable connections whose current version has no job in Redis. */
  readonly withoutJob: readonly string[];
  readonly revokedGrants: ReadonlySet<string>;
  readonly droppedGrants: ReadonlySet<string>;
  /** Connections that went in doubt during the run (their `in_doubt` events). */
  readonly everInDoubt: ReadonlySet<string>;
  readonly badTokens: readonly BadToken[];
  /** After a fault ends, how long the system may take before an expiry counts again. */
  readonly recoveryBoundMs: number;
  readonly endedAt: number;
}

const iso = (at: number) => new Date(at).toISOString();
const LISTED = 20;

/** A span in which a provider answer may be lost by design, and the fault that may lose it. */
export interface LossSpan extends Span {
  readonly cause: string;
}

/**
 * Spans in which a provider answer may be lost by design (see Started.losesAnswers), and
 * those in which the mock providers' own process stalled (stall-watch.ts).
 */
export function answerLossSpans(
  records: readonly FaultRecord[],
  timeoutMs: number,
  providerStalls: readonly Span[] = [],
): LossSpan[] {
  const spans: LossSpan[] = records.flatMap((record) =>
    record.losesAnswers ? [{ ...record.losesAnswers, cause: record.kind }] : [],
  );
  for (const stall of providerStalls) {
    spans.push({ ...stall, cause: "mock provider stalled with the harness (no fault injected)" });
  }
  // A success PostgreSQL cannot store is parked in Redis (ADR 0004) until a later try
  // stores it: Redis losing its data before then loses the answer.
  for (const pg of records.filter((record) => record.kind === POSTGRES_FAULT)) {
    const pgEnd = (pg.endedAt ?? Number.POSITIVE_INFINITY) + 10_000;
    for (const redis of records.filter((record) => REDIS_FAULTS.has(record.kind))) {
      const redisEnd = redis.endedAt ?? Number.POSITIVE_INFINITY;
      if (redis.startedAt <= pgEnd && redisEnd >= pg.startedAt) {
        spans.push({
          from: pg.startedAt - timeoutMs - 4_000,
          to: Math.min(pgEnd, redisEnd),
          cause: `answer parked during a PostgreSQL outage, lost with ${redis.kind}`,
        });
      }
    }
  }
  return spans;
}

export function judge(evidence: Evidence, lossSpans: readonly LossSpan[]): Verdict[] {
  return [
    judgeReuse(evidence, lossSpans),
    judgeLostConnections(evidence),
    judgeExpiry(evidence),
    judgeStopped(evidence),
    judgeDoubt(evidence, lossSpans),
    judgeCounters(evidence, lossSpans),
  ];
}

function allReuses(providers: readonly MockProvider[]): TokenReuse[] {
  return providers.flatMap((provider) => [...provider.reuses]);
}

/** The injected fault that may have lost an answer sent at `at` for this grant, or null. */
function lossCause(
  at: number,
  grantId: string,
  evidence: Evidence,
  lossSpans: readonly LossSpan[],
): string | null {
  if (evidence.droppedGrants.has(grantId)) return "its answer was dropped (injected)";
  return lossSpans.find((candidate) => within(at, candidate))?.cause ?? null;
}

function reuseExplanation(
  reuse: TokenReuse,
  evidence: Evidence,
  lossSpans: readonly LossSpan[],
): string | null {
  const cause = lossCause(reuse.rotatedAt.getTime(), reuse.grantId, evidence, lossSpans);
  if (!cause || evidence.droppedGrants.has(reuse.grantId)) return cause;
  return `${cause}, answer ${reuse.replacementDelivered ? "delivered, never stored" : "never delivered"}`;
}

/**
 * SPEC §2 and §7: a token the provider has rotated is never sent again, whatever the fault:
 * a refresh whose answer may be lost is in doubt and resent only inside a reuse grace
 * (docs/adr/0016). Every reuse fails the run; the fault span it fell in, if any, is named
 * to read the failure.
 */
function judgeReuse(evidence: Evidence, lossSpans: readonly LossSpan[]): Verdict {
  const reuses = allReuses(evidence.providers);
  const violations = reuses.map((reuse) => {
    const during = reuseExplanation(reuse, evidence, lossSpans);
    return (
      `grant ${reuse.grantId}: token rotated ${iso(reuse.rotatedAt.getTime())}, reused ` +
      `${iso(reuse.at.getTime())}, replacement ${reuse.replacementDelivered ? "delivered" : "never delivered"}` +
      (during ? ` (rotated during: ${during})` : "")
    );
  });
  return {
    name: "rotated refresh tokens reused",
    holds: violations.length === 0,
    value: String(violations.length),
    details: violations.slice(0, LISTED),
  };
}

function judgeLostConnections(evidence: Evidence): Verdict {
  const missing = evidence.members.filter((member) => !evidence.rows.has(member.connectionId));
  const violations = [
    ...missing.map((member) => `connection ${member.connectionId}: row gone`),
    ...evidence.withoutJob.map((id) => `connection ${id}: refreshable, no job for its version`),
  ];
  return {
    name: "connections lost or without a job after the sweep interval",
    holds: violations.length === 0,
    value: String(violations.length),
    details: violations.slice(0, LISTED),
  };
}

/** Lapses the provider saw, plus tokens of live grants that are expired now. */
function lapses(evidence: Evidence): TokenLapse[] {
  const seen = evidence.providers.flatMap((provider) => [...provider.lapses]);
  for (const member of evidence.members) {
    const status = evidence.rows.get(member.connectionId)?.status;
    if (status !== "active" && status !== "expired") continue;
    const grant = member.provider.grant(member.grantId);
    if (grant && !grant.revoked && grant.accessTokenExpiresAt.getTime() <= evidence.endedAt) {
      seen.push({
        grantId: member.grantId,
        expiredAt: grant.accessTokenExpiresAt,
        renewedAt: new Date(evidence.endedAt),
      });
    }
  }
  return seen;
}

function judgeExpiry(evidence: Evidence): Verdict {
  const windows = evidence.records
    .filter((record) => !GRANT_FAULTS.has(record.kind))
    .map((record) => ({
      from: record.startedAt,
      to: (record.endedAt ?? evidence.endedAt) + evidence.recoveryBoundMs,
    }));
  const all = lapses(evidence);
  const violations = all.filter(
    (lapse) => !windows.some((window) => within(lapse.expiredAt.getTime(), window)),
  );
  const excusedMs = mergedLength(windows);
  return {
    name: "tokens expired while provider and system were healthy",
    holds: violations.length === 0,
    value: `${violations.length} (${all.length - violations.length} excused in fault windows)`,
    details: [
      `fault windows plus the recovery bound cover ${(excusedMs / 1000).toFixed(0)} s of the run`,
      ...violations
        .slice(0, LISTED)
        .map(
          (lapse) =>
            `grant ${lapse.grantId}: expired ${iso(lapse.expiredAt.getTime())}, renewed ${iso(lapse.renewedAt.getTime())}`,
        ),
    ],
  };
}

/**
 * A connection that a refresh in doubt stopped (docs/adr/0016): `needs_reauth` with
 * `in_doubt`, the token not sent again after an answer that may have rotated it was lost.
 * Judged by judgeDoubt.
 */
function stoppedInDoubt(row: ConnectionRow): boolean {
  return row.status === "needs_reauth" && row.lastErrorCode === "in_doubt";
}

/** Every connection that stopped (needs_reauth, error) had its grant killed by this run. */
function judgeStopped(evidence: Evidence): Verdict {
  const violations: string[] = [];
  let revoked = 0;
  for (const member of evidence.members) {
    const row = evidence.rows.get(member.connectionId);
    if (!row || row.status === "active" || row.status === "expired") continue;
    if (row.status === "needs_reauth" && evidence.revokedGrants.has(member.grantId)) revoked += 1;
    else if (!stoppedInDoubt(row)) {
      violations.push(
        `connection ${member.connectionId}: ${row.status} (${row.lastErrorCode ?? "no error code"})`,
      );
    }
  }
  return {
    name: "needs_reauth (or error) not explained by an injected grant kill or a refresh in doubt",
    holds: violations.length === 0,
    value: String(violations.length),
    details: [`revoked at the provider: ${revoked}`, ...violations.slice(0, LISTED)],
  };
}

/**
 * What ADR 0016 does after a lost answer at a rotating provider without reuse grace: the
 * connection stops (`needs_reauth`, `in_doubt`), excused only when its doubt (the row's
 * `inDoubtSince`) began inside a span where a fault may lose answers, or at a grant whose
 * answer was dropped. With reuse grace a lost answer costs nothing: a grace grant stopped
 * this way fails the run wherever its doubt began.
 */
function judgeDoubt(evidence: Evidence, lossSpans: readonly LossSpan[]): Verdict {
  const excused = new Map<string, number>();
  const violations: string[] = [];
  let stopped = 0;
  let pending = 0;
  const doubted = { grace: 0, none: 0 };
  for (const member of evidence.members) {
    if (evidence.everInDoubt.has(member.connectionId)) {
      if (member.reuseGrace === null) doubted.none += 1;
      else doubted.grace += 1;
    }
    const row = evidence.rows.get(member.connectionId);
    if (!row) continue;
    if ((row.status === "active" || row.status === "expired") && row.inDoubtSince) pending += 1;
    if (!stoppedInDoubt(row) || evidence.revokedGrants.has(member.grantId)) continue;
    const began = row.inDoubtSince?.getTime();
    const cause =
      began === undefined || !member.rotating || member.reuseGrace !== null
        ? null
        : lossCause(began, member.grantId, evidence, lossSpans);
    if (cause) {
      stopped += 1;
      excused.set(cause, (excused.get(cause) ?? 0) + 1);
    } else {
      violations.push(
        `connection ${member.connectionId}: needs_reauth/in_doubt, doubt began ${began === undefined ? "at an unknown time" : iso(began)}` +
          `${member.reuseGrace === null ? "" : ` (reuse grace ${member.reuseGrace} s)`}`,
      );
    }
  }
  return {
    name: "stopped by a refresh in doubt begun outside an answer-losing fault",
    holds: violations.length === 0,
    value: `${violations.length} (excused: ${stopped} needs_reauth/in_doubt)`,
    details: [
      `went in doubt: ${doubted.none} connections without reuse grace, ${doubted.grace} with it`,
      `still in doubt at the end, refreshing: ${pending}`,
      ...[...excused].map(([why, count]) => `excused, doubt began in: ${why}: ${count}`),
      ...violations.slice(0, LISTED),
    ],
  };
}

/**
 * Exact from both sides, whatever process died: the database's refreshCount per connection
 * against the answers the provider wrote to a client. The two may differ by answers a
 * process received and never stored, which only a kill, a freeze past the lease or lost
 * parked answers do; each difference must be covered by that many of the grant's
 * deliveries inside such spans.
 */
function judgeCounters(evidence: Evidence, lossSpans: readonly LossSpan[]): Verdict {
  let stored = 0;
  let delivered = 0;
  let issued = 0;
  let unstored = 0;
  const violations: string[] = [];
  for (const member of evidence.members) {
    const grant = member.provider.grant(member.grantId);
    const count = evidence.rows.get(member.connectionId)?.refreshCount ?? 0;
    const sent = grant?.deliveredRefreshes ?? 0;
    stored += count;
    delivered += sent;
    issued += grant?.refreshes ?? 0;
    if (count === sent) continue;
    const atRisk = member.provider
      .deliveriesOf(member.grantId)
      .filter((at) => lossSpans.some((span) => within(at.getTime(), span))).length;
    if (count < sent && sent - count <= atRisk) unstored += sent - count;
    else {
      violations.push(
        `connection ${member.connectionId} (${grantKind(member)}): refreshCount ${count}, provider delivered ${sent} ` +
          `(${atRisk} at risk; deliveries ${member.provider
            .deliveriesOf(member.grantId)
            .map((at) => iso(at.getTime()).slice(11, 23))
            .join(", ")})`,
      );
    }
  }
  return {
    name: "refresh counters (sum of refreshCount) equal the provider's successes",
    holds: violations.length === 0,
    value: `${stored} stored = ${delivered} delivered − ${unstored} lost with a killed or frozen process`,
    details: [
      `the provider refreshed ${issued} times; ${issued - delivered} answers never reached a client (timeouts, drops)`,
      ...violations.slice(0, LISTED),
    ],
  };
}

function grantKind(member: Member): string {
  if (!member.rotating) return "not rotating";
  return member.reuseGrace === null ? "rotating" : `rotating, reuse grace ${member.reuseGrace} s`;
}

/** Tokens served that the provider refused at that moment, outside fault windows. */
export function judgeServedTokens(evidence: Evidence, served: number): Verdict {
  const windows = evidence.records.map((record) => ({
    from: record.startedAt,
    to: (record.endedAt ?? evidence.endedAt) + evidence.recoveryBoundMs,
  }));
  const violations = evidence.badTokens.filter(
    (bad) =>
      !evidence.revokedGrants.has(bad.grantId) &&
      !allReuses(evidence.providers).some((reuse) => reuse.grantId === bad.grantId) &&
      !windows.some((window) => within(bad.at, window)),
  );
  return {
    name: "tokens served by the api that the provider refused, while healthy",
    holds: violations.length === 0,
    value: `${violations.length} of ${served} served (${evidence.badTokens.length} in all)`,
    details: violations
      .slice(0, LISTED)
      .map((bad) => `connection ${bad.connectionId} at ${iso(bad.at)}`),
  };
}

function mergedLength(spans: readonly Span[]): number {
  const sorted = [...spans].sort((a, b) => a.from - b.from);
  let total = 0;
  let current: Span | null = null;
  for (const span of sorted) {
    if (current && span.from <= current.to)
      current = { from: current.from, to: Math.max(current.to, span.to) };
    else {
      if (current) total += current.to - current.from;
      current = span;
    }
  }
  return total + (current ? current.to - current.from : 0);
}

/** An outage is a 503 with Retry-After (SPEC §3); a 500 is a defect, in a fault or not. */
export function judgeServerErrors(
  serverErrors: readonly { at: number; status: number; error: string }[],
  requests: number,
): Verdict {
  return {
    name: "token reads answered 5xx other than 503",
    holds: serverErrors.length === 0,
    value: `${serverErrors.length} of ${requests}`,
    details: serverErrors
      .slice(0, LISTED)
      .map((answer) => `${iso(answer.at)}: ${answer.status} ${answer.error}`),
  };
}
