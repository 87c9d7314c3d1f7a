import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { refreshJobId } from "./jobs";
import { refreshConnection } from "./refresh-connection";
import {
  type ConnectionRegistration,
  registerConnection,
  UnknownIntegrationError,
} from "./register-connection";
import { createRefreshHarness, type RefreshHarness } from "./testing";
import { openAccessToken, openRefreshToken } from "./token-cipher";

let h: RefreshHarness;
const NOW = new Date("2030-01-01T00:00:00.000Z");

beforeAll(async () => {
  h = await createRefreshHarness();
  await h.addConnection({ integrationKey: "mock" }); // the "mock" integration (oauth2: 1 h fallback)
});
afterAll(() => h.close());

/** A clock stopped at NOW and no spread, so expiries and schedules are exact. */
const register = (input: Omit<ConnectionRegistration, "integration">, now = NOW) =>
  registerConnection(
    { ...h.deps, prisma: h.prisma, now: () => now, random: () => 0 },
    { integration: "mock", ...input },
  );

const HOUR_MS = 3_600_000;
const jobOf = (id: string, version: number) =>
  h.queue.getJob(refreshJobId({ connectionId: id, version }));

describe("registerConnection", () => {
  it("seals the tokens for the row, records the event and schedules the refresh", async () => {
    const { connection, integration, created } = await register({
      externalId: "first",
      accessToken: "access-1",
      refreshToken: "refresh-1",
      expiresIn: 3600,
    });
    expect(created).toBe(true);
    expect(integration.key).toBe("mock");
    expect(openAccessToken(h.keyRing, connection.id, connection.accessToken)).toBe("access-1");
    expect(openRefreshToken(h.keyRing, connection.id, connection.refreshToken ?? "")).toBe(
      "refresh-1",
    );
    // 300 s buffer before the hour is up.
    expect(connection.nextRefreshAt).toEqual(new Date(NOW.getTime() + HOUR_MS - 300_000));
    expect(await jobOf(connection.id, 0)).toBeTruthy();
    const events = await h.prisma.connectionEvent.findMany({
      where: { connectionId: connection.id },
    });
    expect(events.map((e) => e.type)).toEqual(["created"]);
  });

  it.each([
    ["no expiry", {}],
    ["an expiresAt in the past", { expiresAt: new Date(NOW.getTime() - 60_000) }],
    ["an expiresAt under a second ahead", { expiresAt: new Date(NOW.getTime() + 500) }],
    ["expiresIn 0", { expiresIn: 0 }],
    ["a negative expiresIn", { expiresIn: -50 }],
  ])("applies the provider's fallback lifetime to %s, and schedules it", async (label, stated) => {
    const { connection } = await register({
      externalId: `fallback ${label}`,
      accessToken: "access",
      refreshToken: "refresh",
      ...stated,
    });
    expect(connection.expiresAt).toEqual(new Date(NOW.getTime() + HOUR_MS));
    expect(connection.nextRefreshAt).toEqual(new Date(NOW.getTime() + HOUR_MS - 300_000));
    expect(await jobOf(connection.id, 0)).toBeTruthy();
  });

  it("schedules a short-lived token before it expires: the 30 s floor counts from a refresh", async () => {
    const { connection } = await register({
      externalId: "tiny",
      accessToken: "access",
      refreshToken: "refresh",
      expiresIn: 10,
    });
    expect(connection.expiresAt).toEqual(new Date(NOW.getTime() + 10_000));
    // Half the lifetime as the buffer, less up to 10 % of it as spread.
    const due = connection.nextRefreshAt?.getTime() ?? 0;
    expect(due).toBeGreaterThanOrEqual(NOW.getTime() + 4_500);
    expect(due).toBeLessThanOrEqual(NOW.getTime() + 5_000);
  });

  it("schedules tokens re-sent right after a refresh no sooner than 30 s after that refresh", async () => {
    const { connection } = await register({
      externalId: "re-sent",
      accessToken: "access",
      refreshToken: "refresh",
      expiresIn: 3600,
    });
    const refreshedAt = new Date(NOW.getTime() + 1_000);
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { lastRefreshedAt: refreshedAt },
    });
    // 5 s after that refresh, the app re-posts a token that lives 6 s more.
    const resent = await register(
      { externalId: "re-sent", accessToken: "access-2", expiresIn: 6 },
      new Date(refreshedAt.getTime() + 5_000),
    );
    expect(resent.connection.nextRefreshAt).toEqual(new Date(refreshedAt.getTime() + 30_000));
    // A connection never refreshed keeps the half-lifetime schedule (the test above).
  });

  it("keeps the stored refresh token when none is sent, still scheduled, and refreshes with it", async () => {
    const grant = h.provider.issueGrant({ rotate: true });
    const first = await register(
      {
        externalId: "google-style",
        accessToken: grant.accessToken,
        refreshToken: grant.refreshToken,
        expiresIn: 3600,
      },
      new Date(),
    );
    // The user logs in again: Google sends an access token and no refresh token.
    const again = await register(
      { externalId: "google-style", accessToken: "access-2", expiresIn: 3600 },
      new Date(),
    );
    expect(again.created).toBe(false);
    expect(again.connection).toMatchObject({ id: first.connection.id, version: 1 });
    expect(openAccessToken(h.keyRing, again.connection.id, again.connection.accessToken)).toBe(
      "access-2",
    );
    expect(
      openRefreshToken(h.keyRing, again.connection.id, again.connection.refreshToken ?? ""),
    ).toBe(grant.refreshToken);
    expect(again.connection.nextRefreshAt).not.toBeNull();
    expect(await jobOf(again.connection.id, 1)).toBeTruthy();

    const run = await refreshConnection(h.deps, {
      connectionId: again.connection.id,
      source: "worker",
    });
    expect(run).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
  });

  it("waits for a refresh in flight before keeping the stored refresh token, so a rotated one is not lost", async () => {
    const grant = h.provider.issueGrant({ rotate: true });
    const { connection } = await register(
      {
        externalId: "relogin-during-refresh",
        accessToken: grant.accessToken,
        refreshToken: grant.refreshToken,
        expiresIn: 3600,
      },
      new Date(),
    );
    h.provider.latencyMs = 300;
    try {
      const refreshing = refreshConnection(h.deps, {
        connectionId: connection.id,
        expectedVersion: connection.version,
        source: "worker",
      });
      // The provider has rotated the refresh token; its answer is on the way.
      await vi.waitFor(() => expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1), {
        interval: 5,
      });
      const again = await register(
        { externalId: "relogin-during-refresh", accessToken: "access-2", expiresIn: 3600 },
        new Date(),
      );
      expect(await refreshing).toMatchObject({ kind: "done", outcome: "success" });
      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
      expect(row.version).toBe(again.connection.version);
      expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(
        h.provider.grant(grant.grantId)?.refreshToken,
      );
      expect(openAccessToken(h.keyRing, row.id, row.accessToken)).toBe("access-2");
    } finally {
      h.provider.latencyMs = 0;
    }
    const next = await refreshConnection(h.deps, { connectionId: connection.id, source: "worker" });
    expect(next).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.reuseCount).toBe(0);
  });

  it("keeps a known refresh token expiry (and its reauth_soon announcement) with the refresh token it belongs to, and forgets both for a new one", async () => {
    const { connection } = await register({
      externalId: "expiring",
      accessToken: "a",
      refreshToken: "r",
    });
    const known = new Date(NOW.getTime() + 5 * 24 * HOUR_MS);
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { refreshTokenExpiresAt: known, reauthSoonNotifiedFor: known },
    });
    const kept = await register({ externalId: "expiring", accessToken: "a2" });
    expect(kept.connection).toMatchObject({
      refreshTokenExpiresAt: known,
      reauthSoonNotifiedFor: known,
    });
    // A new refresh token is a new grant: its end, if any, is announced afresh.
    const replaced = await register({
      externalId: "expiring",
      accessToken: "a3",
      refreshToken: "r3",
    });
    expect(replaced.connection).toMatchObject({
      refreshTokenExpiresAt: null,
      reauthSoonNotifiedFor: null,
    });
  });

  it("stores the refresh token expiry a code exchange was told, with its refresh token", async () => {
    const stated = new Date(NOW.getTime() + 100 * 24 * HOUR_MS);
    const created = await register({
      externalId: "stated-expiry",
      accessToken: "a",
      refreshToken: "r",
      refreshTokenExpiresAt: stated,
    });
    expect(created.connection.refreshTokenExpiresAt).toEqual(stated);
    const again = await register({
      externalId: "stated-expiry",
      accessToken: "a2",
      refreshToken: "r2",
      refreshTokenExpiresAt: new Date(stated.getTime() + HOUR_MS),
    });
    expect(again.connection.refreshTokenExpiresAt).toEqual(new Date(stated.getTime() + HOUR_MS));
  });

  it("lays the provider's values over the given metadata, or over the stored one when none is given", async () => {
    const first = await register({
      externalId: "provider-values",
      accessToken: "a",
      refreshToken: "r",
      metadata: { plan: "pro", instance_url: "https://stale.my.salesforce.com" },
      providerValues: { instance_url: "https://acme.my.salesforce.com" },
    });
    expect(first.connection.metadata).toEqual({
      plan: "pro",
      instance_url: "https://acme.my.salesforce.com",
    });
    // A later exchange without metadata keeps the app's and updates the provider's.
    const second = await register({
      externalId: "provider-values",
      accessToken: "a2",
      providerValues: { instance_url: "https://acme2.my.salesforce.com" },
    });
    expect(second.connection.metadata).toEqual({
      plan: "pro",
      instance_url: "https://acme2.my.salesforce.com",
    });
    // No values and no metadata: the stored metadata stays as it is.
    const third = await register({ externalId: "provider-values", accessToken: "a3" });
    expect(third.connection.metadata).toEqual(second.connection.metadata);
  });

  it("gives tokens that state no expiry the integration's lifetime over the provider's fallback", async () => {
    await h.prisma.integration.update({
      where: { key: "mock" },
      data: { accessTokenLifetimeSeconds: 7200 },
    });
    try {
      const { connection } = await register({ externalId: "no-expiry", accessToken: "a" });
      expect(connection.expiresAt).toEqual(new Date(NOW.getTime() + 2 * HOUR_MS));
      // A stated expiry still wins.
      const stated = await register({ externalId: "no-expiry", accessToken: "b", expiresIn: 600 });
      expect(stated.connection.expiresAt).toEqual(new Date(NOW.getTime() + 600_000));
    } finally {
      await h.prisma.integration.update({
        where: { key: "mock" },
        data: { accessTokenLifetimeSeconds: null },
      });
    }
  });

  it("drops a refresh token the provider refused when new tokens come without one", async () => {
    const grant = h.provider.issueGrant({ rotate: true });
    const first = await register(
      {
        externalId: "refused-grant",
        accessToken: grant.accessToken,
        refreshToken: grant.refreshToken,
        expiresIn: 3600,
      },
      new Date(),
    );
    h.provider.revoke(grant.refreshToken);
    const refused = await refreshConnection(h.deps, {
      connectionId: first.connection.id,
      source: "api",
    });
    expect(refused).toMatchObject({ kind: "done", outcome: "invalid_grant" });
    const sentBefore = h.provider.requests;

    // The app re-authorizes, and the provider (Google without prompt=consent) gives an
    // access token only: the refused refresh token must not be sent again.
    const again = await register(
      { externalId: "refused-grant", accessToken: "access-2", expiresIn: 3600 },
      new Date(),
    );
    expect(again.connection).toMatchObject({ status: "active", refreshToken: null });
    expect(again.connection.nextRefreshAt).toEqual(again.connection.expiresAt);
    const run = await refreshConnection(h.deps, {
      connectionId: again.connection.id,
      source: "api",
    });
    expect(run).toMatchObject({ kind: "done", outcome: "invalid_grant" });
    expect(run.kind === "done" && run.connection.lastErrorCode).toBe("no_refresh_token");
    expect(h.provider.requests).toBe(sentBefore);
  });

  it("schedules a connection without a refresh token to stop once its access token expires", async () => {
    const { connection } = await register({
      externalId: "no-refresh",
      accessToken: "access",
      expiresIn: 600,
    });
    expect(connection.refreshToken).toBeNull();
    expect(connection.nextRefreshAt).toEqual(connection.expiresAt);
    expect(await jobOf(connection.id, 0)).toBeDefined();
    // The job, when it runs: nothing is sent, the connection says what the token route says.
    const sentBefore = h.provider.requests;
    const run = await refreshConnection(h.deps, {
      connectionId: connection.id,
      expectedVersion: 0,
      source: "worker",
    });
    expect(run).toMatchObject({ kind: "done", outcome: "invalid_grant" });
    expect(run.kind === "done" && run.connection).toMatchObject({
      status: "needs_reauth",
      nextRefreshAt: null,
      lastErrorCode: "no_refresh_token",
    });
    expect(h.provider.requests).toBe(sentBefore);
    const webhooks = await h.prisma.webhookEvent.findMany({
      where: { connectionId: connection.id },
    });
    expect(webhooks.map((event) => event.type)).toEqual([
      "connection.created",
      "connection.needs_reauth",
    ]);
  });

  it("makes one row of parallel first registrations, with tokens sealed for it", async () => {
    const grant = h.provider.issueGrant();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, n) =>
        register(
          {
            externalId: "double-submit",
            accessToken: `access-${n}`,
            refreshToken: grant.refreshToken,
            expiresIn: 3600,
          },
          new Date(),
        ),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const ids = new Set(results.map((r) => r.connection.id));
    expect(ids.size).toBe(1);
    const row = await h.prisma.connection.findFirstOrThrow({
      where: { externalId: "double-submit" },
    });
    expect(openAccessToken(h.keyRing, row.id, row.accessToken)).toMatch(/^access-\d$/);
    const run = await refreshConnection(h.deps, { connectionId: row.id, source: "worker" });
    expect(run).toMatchObject({ kind: "done", outcome: "success" });
  });

  it("refuses an unknown integration", async () => {
    await expect(
      registerConnection(
        { ...h.deps, prisma: h.prisma },
        { integration: "nope", externalId: "x", accessToken: "a" },
      ),
    ).rejects.toBeInstanceOf(UnknownIntegrationError);
  });
});
