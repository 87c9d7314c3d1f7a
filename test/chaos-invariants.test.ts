import { type MockProvider, startMockProvider } from "@evergreen/providers/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConnectionRow } from "../chaos/database";
import { answerLossSpans, type Evidence, judge } from "../chaos/invariants";
import type { Member } from "../chaos/population";
import type { FaultRecord } from "../chaos/timeline";

// The chaos suite's judgement on evidence made by a real mock provider: what it excuses
// and what it must not.
let provider: MockProvider;
beforeEach(async () => {
  provider = await startMockProvider();
});
afterEach(() => provider.close());

async function refresh(refreshToken: string): Promise<number> {
  const answer = await fetch(provider.tokenUrl, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "refresh_token",
      refresh_token: refreshToken,
      client_id: provider.clientId,
      client_secret: provider.clientSecret,
    }).toString(),
  });
  await answer.arrayBuffer();
  return answer.status;
}

function member(grantId: string, reuseGrace: number | null = null): Member {
  return {
    connectionId: `c-${grantId}`,
    grantId,
    provider,
    rotating: true,
    reuseGrace,
    lifetimeSeconds: 60,
  };
}

function row(
  id: string,
  status: string,
  refreshCount: number,
  doubt: { code: string; since: Date } | null = null,
): [string, ConnectionRow] {
  return [
    id,
    {
      id,
      status,
      version: 1,
      refreshCount,
      nextRefreshAt: null,
      lastErrorCode: doubt?.code ?? null,
      inDoubtSince: doubt?.since ?? null,
    },
  ];
}

function record(kind: string, from: number, to: number, losesAnswers = false): FaultRecord {
  return {
    kind,
    target: "t",
    startedAt: from,
    endedAt: to,
    recoveredAt: to,
    losesAnswers: losesAnswers ? { from, to } : null,
    healthy: async () => true,
  };
}

function evidence(
  members: Member[],
  rows: [string, ConnectionRow][],
  records: FaultRecord[],
): Evidence {
  return {
    records,
    members,
    providers: [provider],
    rows: new Map(rows),
    withoutJob: [],
    revokedGrants: new Set(),
    droppedGrants: new Set(),
    everInDoubt: new Set(),
    badTokens: [],
    recoveryBoundMs: 1_000,
    endedAt: Date.now(),
  };
}

const verdict = (all: ReturnType<typeof judge>, start: string) => {
  const found = all.find((item) => item.name.startsWith(start));
  if (!found) throw new Error(`no verdict ${start}`);
  return found;
};

describe("chaos invariants", () => {
  it("fail every reuse of a rotated token, naming the fault span it fell in", async () => {
    const grant = provider.issueGrant({ rotate: true, accessTokenTtlSeconds: 3600 });
    const before = Date.now();
    expect(await refresh(grant.refreshToken)).toBe(200);
    expect(await refresh(grant.refreshToken)).toBe(400);
    const after = Date.now();
    const members = [member(grant.grantId)];
    // The answer was delivered but never stored: refreshCount stayed 0.
    const rows = [
      row(`c-${grant.grantId}`, "needs_reauth", 0, {
        code: "invalid_grant",
        since: new Date(before),
      }),
    ];

    const healthy = evidence(members, rows, []);
    const failed = judge(healthy, answerLossSpans(healthy.records, 2_000));
    expect(verdict(failed, "rotated")).toMatchObject({ holds: false, value: "1" });
    // Refused for the reuse, not stopped in doubt: no injected grant kill explains it.
    expect(verdict(failed, "needs_reauth").holds).toBe(false);
    expect(verdict(failed, "refresh counters").holds).toBe(false);

    const killed = evidence(members, rows, [record("SIGKILL worker", before, after, true)]);
    const judged = judge(killed, answerLossSpans(killed.records, 2_000));
    const reused = verdict(judged, "rotated");
    expect(reused.holds).toBe(false);
    expect(reused.details[0]).toMatch(
      /rotated during: SIGKILL worker, answer delivered, never stored/,
    );
    expect(verdict(judged, "refresh counters")).toMatchObject({
      holds: true,
      value: "0 stored = 1 delivered − 1 lost with a killed or frozen process",
    });
  });

  it("excuse needs_reauth/in_doubt only when its doubt began in a span that loses answers, and never with reuse grace", async () => {
    const grant = provider.issueGrant({ rotate: true });
    // The lost answer: the provider rotated, the client never stored the new token.
    expect(await refresh(grant.refreshToken)).toBe(200);
    const since = Date.now();
    const rows = [
      row(`c-${grant.grantId}`, "needs_reauth", 0, { code: "in_doubt", since: new Date(since) }),
    ];
    const doubt = (members: Member[], records: FaultRecord[]) =>
      verdict(
        judge(evidence(members, rows, records), answerLossSpans(records, 2_000)),
        "stopped by a refresh in doubt",
      );

    const noGrace = [member(grant.grantId)];
    expect(doubt(noGrace, [])).toMatchObject({ holds: false });
    expect(doubt(noGrace, [record("5xx burst", since - 10, since + 10)])).toMatchObject({
      holds: false,
    });
    expect(doubt(noGrace, [record("SIGKILL api", since - 20, since - 10, true)]).holds).toBe(false);
    const killed = [record("SIGKILL worker", since - 10, since + 10, true)];
    expect(doubt(noGrace, killed)).toMatchObject({
      holds: true,
      value: "0 (excused: 1 needs_reauth/in_doubt)",
      details: [
        "went in doubt: 0 connections without reuse grace, 0 with it",
        "still in doubt at the end, refreshing: 0",
        "excused, doubt began in: SIGKILL worker: 1",
      ],
    });
    expect(
      verdict(
        judge(evidence(noGrace, rows, killed), answerLossSpans(killed, 2_000)),
        "needs_reauth",
      ).holds,
    ).toBe(true);
    // A stop with another code is no refresh in doubt: the other verdict judges it.
    const other = [
      row(`c-${grant.grantId}`, "error", 0, { code: "invalid_client", since: new Date(since) }),
    ];
    const judged = judge(evidence(noGrace, other, killed), answerLossSpans(killed, 2_000));
    expect(verdict(judged, "needs_reauth").holds).toBe(false);
    // Inside a reuse grace the resend is accepted: stopping such a grant is a defect.
    expect(doubt([member(grant.grantId, 1800)], killed).holds).toBe(false);
  });

  it("fail a refresh count above what the provider delivered", async () => {
    const grant = provider.issueGrant({ rotate: true });
    expect(await refresh(grant.refreshToken)).toBe(200);
    const rows = [row(`c-${grant.grantId}`, "active", 2)];
    const judged = judge(evidence([member(grant.grantId)], rows, []), []);
    expect(verdict(judged, "refresh counters").holds).toBe(false);
  });

  it("fail a lapse in healthy time or in a fault that hits chosen grants only", async () => {
    const grant = provider.issueGrant({ accessTokenTtlSeconds: 0 });
    const expiredAt = provider.grant(grant.grantId)?.accessTokenExpiresAt.getTime() ?? 0;
    expect(await refresh(grant.refreshToken)).toBe(200);
    const rows = [row(`c-${grant.grantId}`, "active", 1)];
    const members = [member(grant.grantId)];
    const expiry = (records: FaultRecord[]) =>
      verdict(judge(evidence(members, rows, records), []), "tokens expired").holds;

    expect(expiry([])).toBe(false);
    expect(expiry([record("answer dropped after rotating", expiredAt - 10, expiredAt + 10)])).toBe(
      false,
    );
    expect(expiry([record("Redis FLUSHALL", expiredAt - 10, expiredAt - 5)])).toBe(true);
  });
});
