import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { refreshConnection } from "./refresh-connection";
import { doubtStage, graceEnd } from "./refresh-doubt";
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
  it("records the doubt, resends once, and needs_reauth when the provider confirms the rotation", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    loseNextAnswer(grant.grantId, true);
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "transient" });
    const doubted = await rowOf(connection.id);
    expect(doubted).toMatchObject({
      status: "active",
      lastErrorCode: "in_doubt",
      inDoubtResent: false,
    });
    expect(doubted.inDoubtSince).not.toBeNull();
    expect(doubted.lastErrorMessage).toMatch(/GitHub .*documents no reuse grace.*resent once/);
    expect(doubted.nextRefreshAt).not.toBeNull();

    // The one careful resend: GitHub has rotated the token, so it refuses the old one.
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "invalid_grant" });
    const gone = await rowOf(connection.id);
    expect(gone).toMatchObject({
      status: "needs_reauth",
      nextRefreshAt: null,
      lastErrorCode: "invalid_grant",
      inDoubtSince: null,
    });
    expect(gone.lastErrorMessage).toMatch(/earlier answer was lost.*authorize again/);
    expect(tokenRequests()).toBe(2);
    expect(await refresh(connection.id)).toEqual({ kind: "skipped", reason: "needs_reauth" });
    expect(tokenRequests()).toBe(2);
    expect(await eventsOf(connection.id)).toEqual([
      ["refresh_failed", "transient", "in_doubt"],
      ["needs_reauth", "invalid_grant", "invalid_grant"],
    ]);
    expect(await webhooksOf(connection.id)).toEqual([
      "connection.refresh_failed",
      "connection.needs_reauth",
    ]);
  });

  it("puts a refresh in doubt when the connection is reset after the provider rotated", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    h.provider.failNext(1, { reset: true, applyRefresh: true }, { grantId: grant.grantId });
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "transient" });
    const doubted = await rowOf(connection.id);
    expect(doubted).toMatchObject({ lastErrorCode: "in_doubt", inDoubtResent: false });
    expect(doubted.inDoubtSince).not.toBeNull();
    // The careful resend waits out a slow spell: two time limits, the longest backoff up to 30 s.
    const { timeoutMs, retryMaxDelayMs } = h.deps.settings;
    const wait = Math.max(2 * timeoutMs, Math.min(retryMaxDelayMs, 30_000));
    expect(doubted.nextRefreshAt?.getTime()).toBeGreaterThanOrEqual(
      (doubted.lastErrorAt?.getTime() ?? 0) + wait,
    );
    // One careful resend, refused: no retry after retry of the rotated-away token.
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "invalid_grant" });
    expect(await refresh(connection.id)).toEqual({ kind: "skipped", reason: "needs_reauth" });
    expect(tokenRequests()).toBe(2);
    expect(h.provider.reuseCount).toBe(1);
  });

  it("keeps the grant when the lost request had not rotated it: the careful resend succeeds", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    loseNextAnswer(grant.grantId, false);
    await refresh(connection.id);
    expect((await rowOf(connection.id)).inDoubtSince).not.toBeNull();

    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    const row = await rowOf(connection.id);
    expect(row).toMatchObject({ status: "active", inDoubtSince: null, lastErrorCode: null });
    const current = h.provider.grant(grant.grantId)?.refreshToken;
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(current);
    expect(h.provider.reuseCount).toBe(0);
  });

  it.each([
    ["lost again", { hang: true } as const],
    ["a 503", { status: 503 }],
  ])(
    "stops after a careful resend that got no verdict (%s): error, never sent again",
    async (_name, answer) => {
      const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
      loseNextAnswer(grant.grantId, false);
      await refresh(connection.id);
      h.provider.failNext(1, answer, { grantId: grant.grantId });
      await refresh(connection.id);
      const stopped = await rowOf(connection.id);
      expect(stopped).toMatchObject({
        status: "error",
        nextRefreshAt: null,
        lastErrorCode: "in_doubt",
        inDoubtResent: true,
      });
      expect(stopped.lastErrorMessage).toMatch(/not sent again: send new tokens/);
      expect(tokenRequests()).toBe(2);
      expect(await webhooksOf(connection.id)).toEqual([
        "connection.refresh_failed",
        "connection.error",
      ]);

      // Even made refreshable again (an integration update retries `error` rows), the token
      // in doubt is not sent.
      await h.prisma.connection.update({
        where: { id: connection.id },
        data: { status: "active", version: { increment: 1 } },
      });
      await refresh(connection.id);
      expect(tokenRequests()).toBe(2);
      expect(await rowOf(connection.id)).toMatchObject({
        status: "error",
        lastErrorCode: "in_doubt",
      });
    },
  );

  it("does not spend the careful resend on a 429: the provider refused before looking", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    loseNextAnswer(grant.grantId, false);
    await refresh(connection.id);
    h.provider.failNext(1, { status: 429, retryAfter: "0" }, { grantId: grant.grantId });
    expect(await refresh(connection.id)).toMatchObject({ kind: "cooling_down" });
    expect(await rowOf(connection.id)).toMatchObject({ inDoubtResent: false });
    await h.redis.del(`${h.prefix}:cooldown:${connection.integrationId}`);
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    expect(await rowOf(connection.id)).toMatchObject({ inDoubtSince: null, status: "active" });
  });

  it("a new refresh token from the app ends the doubt", async () => {
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
    expect(await rowOf(connection.id)).toMatchObject({ inDoubtSince: null, inDoubtResent: false });
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
    expect(await rowOf(connection.id)).toMatchObject({
      status: "active",
      inDoubtSince: since,
      inDoubtResent: false,
    });
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.reuseCount).toBe(0);
    expect(tokenRequests()).toBe(3);
  });

  it("after the window, the resend is the one careful attempt", async () => {
    const { connection, grant } = await addXeroConnection();
    loseNextAnswer(grant.grantId, true);
    await refresh(connection.id);
    const later = () => new Date(Date.now() + 31 * 60_000);
    h.provider.failNext(1, { status: 503 }, { grantId: grant.grantId });
    await refresh(connection.id, later);
    expect(await rowOf(connection.id)).toMatchObject({
      status: "error",
      lastErrorCode: "in_doubt",
      inDoubtResent: true,
    });
    expect(tokenRequests()).toBe(2);
  });
  it("stages the resend when it is sent: a window that closes while claiming makes it the careful one", async () => {
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
    h.provider.failNext(1, { status: 503 }, { grantId: grant.grantId });
    await refresh(connection.id, () => new Date(Date.now() + skew));
    expect(await rowOf(connection.id)).toMatchObject({
      status: "error",
      lastErrorCode: "in_doubt",
      inDoubtResent: true,
    });
    expect(tokenRequests()).toBe(2);
  });
});

describe("a refresh whose earlier holder abandoned its claim (crashed after claiming)", () => {
  /** The dead holder's request: it reached the provider (which rotated) or it did not. */
  async function abandonClaim(connectionId: string, refreshToken: string, reached: boolean) {
    if (reached) {
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
      UPDATE connections SET "claimVersion" = version, "claimExpiresAt" = now() - interval '1 s'
       WHERE id = ${connectionId}::uuid RETURNING "claimExpiresAt" AS at`;
    return ranOut[0]?.at ?? new Date(0);
  }

  it("without grace: the send is the careful one, and the provider's refusal confirms the rotation", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    await abandonClaim(connection.id, grant.refreshToken, true);
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "invalid_grant" });
    const row = await rowOf(connection.id);
    expect(row).toMatchObject({ status: "needs_reauth", inDoubtSince: null });
    expect(row.lastErrorMessage).toMatch(/earlier answer was lost/);
  });

  it("without grace: a careful send that succeeds ends it, a 503 stops the connection in doubt", async () => {
    const kept = await h.addConnection({ provider: "github", rotate: true });
    await abandonClaim(kept.connection.id, kept.grant.refreshToken, false);
    expect(await refresh(kept.connection.id)).toMatchObject({ outcome: "success" });
    expect(h.provider.reuseCount).toBe(0);

    const stopped = await h.addConnection({ provider: "github", rotate: true });
    const ranOut = await abandonClaim(stopped.connection.id, stopped.grant.refreshToken, false);
    h.provider.failNext(1, { status: 503 }, { grantId: stopped.grant.grantId });
    await refresh(stopped.connection.id);
    const row = await rowOf(stopped.connection.id);
    expect(row).toMatchObject({ status: "error", lastErrorCode: "in_doubt", inDoubtResent: true });
    // In doubt since the abandoned claim began: its expiry less the lease.
    expect(row.inDoubtSince?.getTime()).toBe(ranOut.getTime() - h.deps.lock.ttlMs);
  });

  it("without grace: a 429 to the careful send keeps the doubt, so a lost answer then stops it", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    await abandonClaim(connection.id, grant.refreshToken, false);
    h.provider.failNext(1, { status: 429, retryAfter: "0" }, { grantId: grant.grantId });
    expect(await refresh(connection.id)).toMatchObject({ kind: "cooling_down" });
    const cooled = await rowOf(connection.id);
    expect(cooled.inDoubtSince).not.toBeNull();
    expect(cooled.inDoubtResent).toBe(false);

    // The send the 429 refused is still the careful one: lost too, nothing more is sent.
    await h.redis.del(`${h.prefix}:cooldown:${connection.integrationId}`);
    loseNextAnswer(grant.grantId, false);
    await refresh(connection.id);
    expect(await rowOf(connection.id)).toMatchObject({
      status: "error",
      lastErrorCode: "in_doubt",
      inDoubtResent: true,
    });
    expect(tokenRequests()).toBe(2);
  });

  it("in doubt already: a careful resend whose holder died before storing was the one", async () => {
    const { connection, grant } = await h.addConnection({ provider: "github", rotate: true });
    loseNextAnswer(grant.grantId, false);
    await refresh(connection.id);
    // The careful resend reached the provider, and its worker was killed before storing.
    await abandonClaim(connection.id, grant.refreshToken, true);
    const sent = tokenRequests();
    await refresh(connection.id);
    expect(tokenRequests()).toBe(sent);
    expect(await rowOf(connection.id)).toMatchObject({
      status: "error",
      lastErrorCode: "in_doubt",
      inDoubtResent: true,
    });
    expect(h.provider.reuseCount).toBe(0);
  });

  it("with grace: the old token is resent inside the window and the provider honours it", async () => {
    const { connection, grant } = await addXeroConnection();
    await abandonClaim(connection.id, grant.refreshToken, true);
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.reuseCount).toBe(0);
    expect(h.provider.grant(grant.grantId)?.revoked).toBe(false);
  });
});

describe("a lost answer that puts nothing in doubt", () => {
  it("a provider that does not rotate: an ordinary transient failure", async () => {
    const { connection, grant } = await h.addConnection();
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
    await refresh(connection.id);
    const count = (outcome: string) =>
      metricValue(h.metrics.refreshTotal, { provider: "github", outcome });
    expect([await count("transient"), await count("invalid_grant")]).toEqual([1, 1]);
  });
});

describe("doubtStage", () => {
  const since = new Date("2026-03-01T12:00:00Z");
  const at = (seconds: number) => new Date(since.getTime() + seconds * 1000);
  const row = (resent = false) => ({ inDoubtSince: since, inDoubtResent: resent });

  it("is none without doubt, grace inside 90 % of a window, careful after, spent once resent", () => {
    expect(
      doubtStage({ inDoubtSince: null, inDoubtResent: false }, { reuseGrace: 30 }, at(0)),
    ).toBe("none");
    expect(doubtStage(row(), { reuseGrace: 30 }, at(26))).toBe("grace");
    expect(doubtStage(row(), { reuseGrace: 30 }, at(27))).toBe("careful");
    expect(doubtStage(row(true), { reuseGrace: 30 }, at(27))).toBe("spent");
    expect(doubtStage(row(), { reuseGrace: null }, at(0))).toBe("careful");
    expect(doubtStage(row(), { reuseGrace: 0 }, at(0))).toBe("careful");
    expect(doubtStage(row(true), { reuseGrace: "until_new_token_used" }, at(1e7))).toBe("grace");
    expect(graceEnd(since, null)).toBeNull();
  });
});
