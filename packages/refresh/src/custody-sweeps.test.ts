import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { announceReauthSoon, validateDueConnections } from "./custody-sweeps";
import { createRefreshHarness, type RefreshHarness, redisDatabaseUrl } from "./testing";
import { sealAccessToken } from "./token-cipher";
import type { ValidationDeps } from "./validate-connection";

let h: RefreshHarness;
let deps: ValidationDeps;
beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: redisDatabaseUrl(4) });
  deps = { ...h.deps, prisma: h.prisma };
});
afterAll(() => h.close());

const DAY_MS = 86_400_000;

describe("validateDueConnections", () => {
  it("validates the connections due, finds the revoked grant, and waits an interval", async () => {
    const fresh = await h.addConnection({ integrationKey: "periodic" });
    const revoked = await h.addConnection({ integrationKey: "periodic" });
    const recent = await h.addConnection({ integrationKey: "periodic" });
    const expired = await h.addConnection({ integrationKey: "periodic", expiresInSeconds: -60 });
    const off = await h.addConnection({ integrationKey: "not-periodic" });
    await h.prisma.integration.update({
      where: { key: "periodic" },
      data: { introspectionUrl: h.provider.introspectionUrl, validateIntervalSeconds: 3600 },
    });
    await h.prisma.connection.update({
      where: { id: recent.connection.id },
      data: { lastValidatedAt: new Date(Date.now() - 60_000) },
    });
    h.provider.revoke(revoked.grant.accessToken);

    expect(await validateDueConnections(deps, { limit: 10 })).toEqual({
      validated: 2,
      revoked: 1,
      failed: 0,
    });
    const rows = new Map(
      (await h.prisma.connection.findMany()).map((row) => [row.id, row] as const),
    );
    expect(rows.get(fresh.connection.id)?.status).toBe("active");
    expect(rows.get(fresh.connection.id)?.lastValidatedAt).not.toBeNull();
    expect(rows.get(revoked.connection.id)?.status).toBe("needs_reauth");
    expect(rows.get(recent.connection.id)?.lastValidatedAt?.getTime()).toBeLessThan(
      Date.now() - 30_000,
    );
    // An expired token is the refresh's business; an integration without interval is off.
    expect(rows.get(expired.connection.id)?.lastValidatedAt).toBeNull();
    expect(rows.get(off.connection.id)?.lastValidatedAt).toBeNull();
    // The refresh token of the revoked grant was never sent.
    expect(h.provider.grant(revoked.grant.grantId)?.refreshes).toBe(0);

    expect(await validateDueConnections(deps, { limit: 10 })).toEqual({
      validated: 0,
      revoked: 0,
      failed: 0,
    });
  });

  it("takes at most `limit` per sweep, least recently validated first", async () => {
    await h.prisma.connection.updateMany({
      where: { integration: { key: "periodic" }, status: "active" },
      data: { lastValidatedAt: new Date(Date.now() - 2 * 3_600_000) },
    });
    const never = await h.addConnection({ integrationKey: "periodic" });
    expect(await validateDueConnections(deps, { limit: 1 })).toMatchObject({ validated: 1 });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: never.connection.id } });
    expect(row.lastValidatedAt).not.toBeNull();
  });

  it("counts a token whose key left the ring as failed and validates the rest of the batch", async () => {
    // Nothing else due: only this test's two rows are picked.
    await h.prisma.connection.updateMany({ data: { lastValidatedAt: new Date() } });
    const unreadable = await h.addConnection({ integrationKey: "keyless" });
    const readable = await h.addConnection({ integrationKey: "keyless" });
    await h.prisma.integration.update({
      where: { key: "keyless" },
      data: { introspectionUrl: h.provider.introspectionUrl, validateIntervalSeconds: 3600 },
    });
    const gone = KeyRing.fromSpec(generateEncryptionKey("gone"));
    await h.prisma.connection.update({
      where: { id: unreadable.connection.id },
      data: {
        accessToken: sealAccessToken(gone, unreadable.connection.id, "secret"),
        // Picked first: least recently validated.
        lastValidatedAt: new Date(Date.now() - 3 * 3_600_000),
      },
    });
    await h.prisma.connection.update({
      where: { id: readable.connection.id },
      data: { lastValidatedAt: new Date(Date.now() - 2 * 3_600_000) },
    });

    expect(await validateDueConnections(deps, { limit: 10 })).toEqual({
      validated: 1,
      revoked: 0,
      failed: 1,
    });
  });
});

describe("announceReauthSoon", () => {
  it("announces an end once, and the next end once the announced one has passed", async () => {
    const soon = await h.addConnection({ integrationKey: "ending" });
    const later = await h.addConnection({ integrationKey: "ending" });
    const end = new Date(Date.now() + 3 * DAY_MS);
    await h.prisma.connection.update({
      where: { id: soon.connection.id },
      data: { refreshTokenExpiresAt: end },
    });
    await h.prisma.connection.update({
      where: { id: later.connection.id },
      data: { refreshTokenExpiresAt: new Date(Date.now() + 30 * DAY_MS) },
    });
    const announce = () => announceReauthSoon(h.prisma, { withinMs: 7 * DAY_MS, limit: 100 });

    expect(await announce()).toBe(1);
    expect(await announce()).toBe(0);
    const webhooks = async () =>
      (
        await h.prisma.webhookEvent.findMany({
          where: { connectionId: soon.connection.id },
          include: { outbox: true },
        })
      ).map((e) => [e.type, e.status, e.outbox !== null]);
    expect(await webhooks()).toEqual([["connection.reauth_soon", "active", true]]);
    const events = await h.prisma.connectionEvent.findMany({
      where: { connectionId: soon.connection.id },
    });
    expect(events.map((e) => e.type)).toEqual(["reauth_soon"]);

    // A refresh stored a new refresh token ending a day later (a sliding lifetime): the end
    // announced still stands, so nothing new to say.
    await h.prisma.connection.update({
      where: { id: soon.connection.id },
      data: { refreshTokenExpiresAt: new Date(end.getTime() + DAY_MS) },
    });
    expect(await announce()).toBe(0);
    // Once the end announced has passed with the connection alive, its new end is announced.
    await h.prisma.connection.update({
      where: { id: soon.connection.id },
      data: { reauthSoonNotifiedFor: new Date(Date.now() - 1_000) },
    });
    expect(await announce()).toBe(1);
    expect(await webhooks()).toHaveLength(2);
    // An end sooner than the one announced is news at once.
    await h.prisma.connection.update({
      where: { id: soon.connection.id },
      data: { refreshTokenExpiresAt: new Date(end.getTime() - DAY_MS) },
    });
    expect(await announce()).toBe(1);
    expect(await webhooks()).toHaveLength(3);
    expect(
      await h.prisma.webhookEvent.count({ where: { connectionId: later.connection.id } }),
    ).toBe(0);
  });
});
