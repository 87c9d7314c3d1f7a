import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { refreshConnection } from "./refresh-connection";
import { doubtStage, graceEnd, mayRotate } from "./refresh-doubt";
import { registerConnection } from "./register-connection";
import { createRefreshHarness, metricValue, type RefreshHarness } from "./testing";
import { openRefreshToken } from "./token-cipher";

// Real PostgreSQL, Redis and the mock provider: the provider rotates, then its answer is
// dropped (`hang` after `applyRefresh`), and the refresh times out after 300 ms.
let h: RefreshHarness;
beforeEach(async () => {
  h = await createRefreshHarness({ timeoutMs: 300 });
});
afterEach(() => h.close());

const refresh = (connectionId: string, now?: () => Date) =>
  refreshConnection(now ? { ...h.deps, now } : h.deps, { connectionId, source: "worker" });

const rowOf = (id: string) => h.prisma.connection.findUniqueOrThrow({ where: { id } });

const tokenRequests = () => h.provider.received.filter((r) => r.path === "/token").length;

async function eventsOf(connectionId: string) {
  const events = await h.prisma.connectionEvent.findMany({
    where: { connectionId },
    orderBy: { id: "asc" },
  });
  return events.map((e) => [e.type, e.outcome, e.errorCode]);
}

async function webhooksOf(connectionId: string) {
  const events = await h.prisma.webhookEvent.findMany({
    where: { connectionId },
    orderBy: { txid: "asc" },
  });
  return events.map((e) => e.type);
}

/** A Xero connection whose mock grant honours Xero's 30-minute reuse grace. */
const addXeroConnection = () =>
  h.addConnection({ provider: "xero", rotate: true, reuseGrace: 1800 });

/** The grant's answer to its next refresh is lost: rotated at the provider, or not. */
function loseNextAnswer(grantId: string, rotated: boolean) {
  h.provider.failNext(1, { hang: true, applyRefresh: rotated }, { grantId });
}

describe("a refresh in doubt, provider without reuse grace (GitHub Apps)", () => {
  it("stops at the lost answer: needs_reauth, and the maybe rotated token is never sent again", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    loseNextAnswer(grant.grantId, true);
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "transient" });
    const stopped = await rowOf(connection.id);
    expect(stopped).toMatchObject({
      status: "needs_reauth",
      nextRefreshAt: null,
      lastErrorCode: "in_doubt",
    });
    expect(stopped.inDoubtSince).not.toBeNull();
    expect(stopped.lastErrorMessage).toMatch(
      /GitHub .*documents no reuse grace.*not sent again; the user must authorize again/,
    );
    expect(await refresh(connection.id)).toEqual({ kind: "skipped", reason: "needs_reauth" });
    expect(tokenRequests()).toBe(1);
    expect(h.provider.reuseCount).toBe(0);
    expect(await eventsOf(connection.id)).toEqual([["needs_reauth", "transient", "in_doubt"]]);
    expect(await webhooksOf(connection.id)).toEqual(["connection.needs_reauth"]);
    // Operators see the stop apart from ordinary transient failures (EvergreenRefreshesStoppedInDoubt).
    expect(await metricValue(h.metrics.refreshStoppedInDoubt, { provider: "github" })).toBe(1);
  });

  it("puts a refresh in doubt when the connection is reset after the provider rotated", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    h.provider.failNext(1, { reset: true, applyRefresh: true }, { grantId: grant.grantId });
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "transient" });
    expect(await rowOf(connection.id)).toMatchObject({
      status: "needs_reauth",
      lastErrorCode: "in_doubt",
    });
    expect(tokenRequests()).toBe(1);
    expect(h.provider.reuseCount).toBe(0);
  });

  it("new tokens from the app end the doubt", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    await registerConnection(
      { ...h.deps, prisma: h.prisma },
      {
        integration: "mock-github",
        externalId: connection.externalId,
        accessToken: "at-new",
        refreshToken: "rt-new",
        expiresIn: 3600,
      },
    );
    expect(await rowOf(connection.id)).toMatchObject({ status: "active", inDoubtSince: null });
  });
});

describe("a refresh in doubt, provider with a reuse grace (Xero, 30 minutes)", () => {
  it("resends the old refresh token inside the window, which the provider honours", async () => {
    const { connection, grant } = await addXeroConnection();
    loseNextAnswer(grant.grantId, true);
    const before = Date.now();
    await refresh(connection.id);
    const doubted = await rowOf(connection.id);
    expect(doubted).toMatchObject({ status: "active", lastErrorCode: "in_doubt" });
    expect(doubted.lastErrorMessage).toMatch(/Xero .*reusable for 1800 s.*within that window/);
    expect(await metricValue(h.metrics.refreshStoppedInDoubt, { provider: "xero" })).toBe(0);
    const since = doubted.inDoubtSince?.getTime() ?? 0;
    expect(since).toBeGreaterThanOrEqual(before - 1);
    expect(doubted.nextRefreshAt?.getTime()).toBeLessThanOrEqual(since + 1800 * 900);

    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    const row = await rowOf(connection.id);
    expect(row).toMatchObject({ status: "active", inDoubtSince: null, lastErrorCode: null });
    const current = h.provider.grant(grant.grantId);
    expect(current?.revoked).toBe(false);
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(current?.refreshToken);
    expect(h.provider.reuseCount).toBe(0);
  });

  it("keeps resending inside the window while answers are lost, from the first send's time", async () => {
    const { connection, grant } = await addXeroConnection();
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    const since = (await rowOf(connection.id)).inDoubtSince;
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    expect(await rowOf(connection.id)).toMatchObject({ status: "active", inDoubtSince: since });
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.reuseCount).toBe(0);
    expect(tokenRequests()).toBe(3);
  });

  it("retries before the window closes, and stops once less than a base delay of it is left", async () => {
    const { connection, grant } = await addXeroConnection();
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    const since = (await rowOf(connection.id)).inDoubtSince?.getTime() ?? 0;
    const usableEnd = since + 1800 * 900;
    // 1.5 s of the window left, less than the backoff after two failures (2 s, no jitter here): the
    // retry goes halfway to the window's end, not after it.
    const left = new Date(usableEnd - 1_500);
    loseNextAnswer(grant.grantId, true);
    await refreshConnection(
      { ...h.deps, now: () => left, random: () => 1 },
      { connectionId: connection.id, source: "worker" },
    );
    const retried = await rowOf(connection.id);
    expect(retried.status).toBe("active");
    expect(retried.nextRefreshAt?.getTime()).toBe(left.getTime() + 750);
    // Half a second left, under the 1 s base delay: no time for another resend.
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id, () => new Date(usableEnd - 500));
    expect(await rowOf(connection.id)).toMatchObject({
      status: "needs_reauth",
      lastErrorCode: "in_doubt",
    });
    expect((await rowOf(connection.id)).lastErrorMessage).toMatch(/reuse grace has passed/);
  });

  it("after the window, the token is not sent: needs_reauth", async () => {
    const { connection, grant } = await addXeroConnection();
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    await refresh(connection.id, () => new Date(Date.now() + 31 * 60_000));
    expect(await rowOf(connection.id)).toMatchObject({
      status: "needs_reauth",
      lastErrorCode: "in_doubt",
    });
    expect(tokenRequests()).toBe(1);
  });

  it("stages the resend when it is sent: a window that closes while claiming stops it unsent", async () => {
    const { connection, grant } = await addXeroConnection();
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    // Claiming takes past the window's end (PostgreSQL or Redis recovering from an outage).
    let skew = 0;
    const store = h.deps.store;
    const claim = store.claim.bind(store);
    store.claim = async (input) => {
      const held = await claim(input);
      skew = 31 * 60_000;
      return held;
    };
    await refresh(connection.id, () => new Date(Date.now() + skew));
    expect(await rowOf(connection.id)).toMatchObject({
      status: "needs_reauth",
      lastErrorCode: "in_doubt",
    });
    expect(tokenRequests()).toBe(1);
  });
});

describe("a refresh whose earlier holder abandoned its claim (crashed after claiming)", () => {
  /**
   * A holder that claimed the row and died: after marking its send and sending (the provider
   * rotated), after marking it only (the request never went), before that (marked claimed),
   * or with its mark lost (Redis lost its data).
   */
  async function abandonClaim(
    connectionId: string,
    refreshToken: string,
    died: "after sending" | "after marking sent" | "before marking sent" | "mark lost",
  ) {
    if (died !== "mark lost") await h.deps.marks.claim(connectionId, 0, "dead-holder");
    if (died === "after sending" || died === "after marking sent") {
      expect(await h.deps.marks.send(connectionId, 0, "dead-holder")).toBe(true);
    }
    if (died === "after sending") {
      const response = await fetch(h.provider.tokenUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: refreshToken,
          client_id: h.provider.clientId,
          client_secret: h.provider.clientSecret,
        }),
      });
      expect(response.status).toBe(200);
    }
    const ranOut = await h.prisma.$queryRaw<{ at: Date }[]>`
      UPDATE connections SET "claimVersion" = version, "claimExpiresAt" = now() - interval '1 s',
             "claimHolder" = '0:dead-holder'
       WHERE id = ${connectionId}::uuid RETURNING "claimExpiresAt" AS at`;
    return ranOut[0]?.at ?? new Date(0);
  }

  it("without grace: nothing is sent, and the connection needs authorizing from the claim's start", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    const ranOut = await abandonClaim(connection.id, grant.refreshToken, "after sending");
    const sent = tokenRequests();
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "transient" });
    const row = await rowOf(connection.id);
    expect(row).toMatchObject({ status: "needs_reauth", lastErrorCode: "in_doubt" });
    // In doubt since the abandoned claim began: its expiry less the lease.
    expect(row.inDoubtSince?.getTime()).toBe(ranOut.getTime() - h.deps.lock.ttlMs);
    expect(tokenRequests()).toBe(sent);
    expect(h.provider.reuseCount).toBe(0);
  });

  it("without grace: another holder's claimed mark over a lost one proves nothing", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    await abandonClaim(connection.id, grant.refreshToken, "after sending");
    // Redis loses the mark; a holder then marks the version claimed and stops before
    // claiming in PostgreSQL (a cooldown, a busy lock, a kill).
    await h.redis.del(`${h.prefix}:sent:${connection.id}`);
    await h.deps.marks.claim(connection.id, 0, "bystander");
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "transient" });
    expect(await rowOf(connection.id)).toMatchObject({ status: "needs_reauth" });
    expect(h.provider.reuseCount).toBe(0);
  });

  it("without grace: a holder that took the claim over and died too leaves the doubt on the row", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    await abandonClaim(connection.id, grant.refreshToken, "after sending");
    await h.redis.del(`${h.prefix}:sent:${connection.id}`);
    // The second holder marks and claims, then dies before anything else.
    const mark = await h.deps.marks.claim(connection.id, 0, "second");
    const claim = { id: connection.id, version: 0, leaseMs: 1_000, holder: "second", mark };
    expect(await h.deps.store.claim({ ...claim, rotates: true })).not.toBeNull();
    await h.prisma.$executeRaw`
      UPDATE connections SET "claimExpiresAt" = now() WHERE id = ${connection.id}::uuid`;
    await refresh(connection.id);
    expect(await rowOf(connection.id)).toMatchObject({ status: "needs_reauth" });
    expect(h.provider.reuseCount).toBe(0);
  });

  it("without grace: new tokens without a refresh token keep the doubt on the token kept", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    await abandonClaim(connection.id, grant.refreshToken, "after sending");
    await registerConnection(
      { ...h.deps, prisma: h.prisma },
      {
        integration: "mock-github",
        externalId: connection.externalId,
        accessToken: "at-new",
        expiresIn: 3600,
      },
    );
    await refresh(connection.id);
    expect(await rowOf(connection.id)).toMatchObject({ status: "needs_reauth" });
    expect(h.provider.reuseCount).toBe(0);
  });

  it("with grace: the old token is resent inside the window and the provider honours it", async () => {
    const { connection, grant } = await addXeroConnection();
    await abandonClaim(connection.id, grant.refreshToken, "after sending");
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.reuseCount).toBe(0);
    expect(h.provider.grant(grant.grantId)?.revoked).toBe(false);
  });

  it("without grace: an answer that spent nothing and could not be stored leaves no doubt behind", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    h.provider.failNext(
      1,
      { status: 503, body: { error: "temporarily_unavailable" } },
      {
        grantId: grant.grantId,
      },
    );
    // PostgreSQL fails every write of the 503's outcome (past the retries): the claim stays.
    const store = h.deps.store as { write: unknown };
    store.write = () => Promise.reject(new Error("connection terminated"));
    try {
      await expect(refresh(connection.id)).rejects.toThrow("connection terminated");
    } finally {
      delete store.write;
    }
    // Its lease runs out; the next holder finds the claim abandoned, after a send the provider
    // refused without rotating: an ordinary refresh, not a stop in doubt.
    await h.prisma.$executeRaw`
      UPDATE connections SET "claimExpiresAt" = now() - interval '1 s' WHERE id = ${connection.id}::uuid`;
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    expect(await rowOf(connection.id)).toMatchObject({ status: "active", inDoubtSince: null });
    expect(h.provider.reuseCount).toBe(0);
  }, 15_000);

  it("without grace: a holder that died before marking its send never sent: an ordinary refresh", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    await abandonClaim(connection.id, grant.refreshToken, "before marking sent");
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    expect(await rowOf(connection.id)).toMatchObject({ status: "active", inDoubtSince: null });
    expect(h.provider.reuseCount).toBe(0);
  });

  it.each(["after marking sent", "mark lost"] as const)(
    "without grace: a holder that died %s may have sent: stopped in doubt",
    async (died) => {
      const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
      await abandonClaim(connection.id, grant.refreshToken, died);
      expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "transient" });
      expect(await rowOf(connection.id)).toMatchObject({
        status: "needs_reauth",
        lastErrorCode: "in_doubt",
      });
      expect(tokenRequests()).toBe(0);
    },
  );

  it("a generic integration not yet seen rotating resends: what a server that does not rotate needs", async () => {
    const { connection, grant } = await h.addConnection();
    await abandonClaim(connection.id, grant.refreshToken, "mark lost");
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
  });
});

describe("a generic integration learns whether its server rotates", () => {
  const learned = async (integrationId: string) =>
    (await h.prisma.integration.findUniqueOrThrow({ where: { id: integrationId } }))
      .refreshTokensRotate;

  it("from an answer with a new refresh token: a lost answer after that is in doubt", async () => {
    const { connection, grant } = await h.addConnection({ rotate: true });
    const before = await h.prisma.integration.findUniqueOrThrow({
      where: { id: connection.integrationId },
    });
    expect(before.refreshTokensRotate).toBeNull();
    expect(await refresh(connection.id)).toMatchObject({ outcome: "success" });
    const after = await h.prisma.integration.findUniqueOrThrow({
      where: { id: connection.integrationId },
    });
    expect(after.refreshTokensRotate).toBe(true);
    // Learning is no update of the integration: refreshes fenced on updatedAt go on.
    expect(after.updatedAt).toEqual(before.updatedAt);

    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    expect(await rowOf(connection.id)).toMatchObject({
      status: "needs_reauth",
      lastErrorCode: "in_doubt",
    });
    expect(h.provider.reuseCount).toBe(0);
  });

  it("from an answer without one: a lost answer stays an ordinary transient failure", async () => {
    const { connection, grant } = await h.addConnection();
    await refresh(connection.id);
    expect(await learned(connection.integrationId)).toBe(false);
    loseNextAnswer(grant.grantId, false);
    await refresh(connection.id);
    expect(await rowOf(connection.id)).toMatchObject({
      status: "active",
      lastErrorCode: "timeout",
      inDoubtSince: null,
    });
  });

  it("but its operator's declaration wins: reusable tokens are resent after a lost answer, rotating ones stop", async () => {
    const reusable = await h.addConnection({ rotate: true, integrationKey: "declared-reusable" });
    await h.prisma.integration.update({
      where: { id: reusable.connection.integrationId },
      data: { refreshTokenRotation: "reusable" },
    });
    expect(await refresh(reusable.connection.id)).toMatchObject({ outcome: "success" });
    // Still learned, for when the declaration is taken away.
    expect(await learned(reusable.connection.integrationId)).toBe(true);
    loseNextAnswer(reusable.grant.grantId, false);
    await refresh(reusable.connection.id);
    expect(await rowOf(reusable.connection.id)).toMatchObject({
      status: "active",
      lastErrorCode: "timeout",
      inDoubtSince: null,
    });

    // Declared rotating: in doubt from the first lost answer, before any answer taught it.
    const rotating = await h.addConnection({ rotate: true, integrationKey: "declared-rotating" });
    await h.prisma.integration.update({
      where: { id: rotating.connection.integrationId },
      data: { refreshTokenRotation: "rotates" },
    });
    loseNextAnswer(rotating.grant.grantId, true);
    await refresh(rotating.connection.id);
    expect(await rowOf(rotating.connection.id)).toMatchObject({
      status: "needs_reauth",
      lastErrorCode: "in_doubt",
    });
    expect(h.provider.reuseCount).toBe(0);
  });

  it("once seen rotating, keeps it when another answer does not rotate", async () => {
    const rotating = await h.addConnection({ rotate: true });
    await refresh(rotating.connection.id);
    const steady = await h.addConnection();
    expect(steady.connection.integrationId).toBe(rotating.connection.integrationId);
    await refresh(steady.connection.id);
    expect(await learned(rotating.connection.integrationId)).toBe(true);
  });
});

describe("a lost answer that puts nothing in doubt", () => {
  it("a provider that does not rotate: an ordinary transient failure", async () => {
    const { connection, grant } = await h.addConnection({ provider: "google" });
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    expect(await rowOf(connection.id)).toMatchObject({
      lastErrorCode: "timeout",
      inDoubtSince: null,
    });
  });

  it("counts in-doubt refreshes under the usual outcome words", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    const count = (outcome: string) =>
      metricValue(h.metrics.refreshTotal, { provider: "github", outcome });
    expect([await count("transient"), await count("invalid_grant")]).toEqual([1, 0]);
  });
});

describe("doubtStage and mayRotate", () => {
  const since = new Date("2026-03-01T12:00:00Z");
  const at = (seconds: number) => new Date(since.getTime() + seconds * 1000);

  it("is none without doubt, grace inside 90 % of a window, closed after or without one", () => {
    expect(doubtStage(null, { reuseGrace: 30 }, at(0))).toBe("none");
    expect(doubtStage(since, { reuseGrace: 30 }, at(26))).toBe("grace");
    expect(doubtStage(since, { reuseGrace: 30 }, at(27))).toBe("closed");
    expect(doubtStage(since, { reuseGrace: null }, at(0))).toBe("closed");
    expect(doubtStage(since, { reuseGrace: 0 }, at(0))).toBe("closed");
    expect(doubtStage(since, { reuseGrace: "until_new_token_used" }, at(1e7))).toBe("grace");
    expect(graceEnd(since, null)).toBeNull();
  });

  it("takes a catalog definition's word, a generic integration's declaration, else its answers", () => {
    const integration = (
      refreshTokensRotate: boolean | null,
      refreshTokenRotation: string | null = null,
    ) => ({ refreshTokensRotate, refreshTokenRotation });
    expect(mayRotate({ rotatesRefreshToken: true }, integration(false, "reusable"))).toBe(true);
    expect(mayRotate({ rotatesRefreshToken: false }, integration(true, "rotates"))).toBe(false);
    expect(mayRotate({ rotatesRefreshToken: "learned" }, integration(null))).toBe(false);
    expect(mayRotate({ rotatesRefreshToken: "learned" }, integration(true))).toBe(true);
    expect(mayRotate({ rotatesRefreshToken: "learned" }, integration(true, "reusable"))).toBe(
      false,
    );
    expect(mayRotate({ rotatesRefreshToken: "learned" }, integration(null, "rotates"))).toBe(true);
  });
});
