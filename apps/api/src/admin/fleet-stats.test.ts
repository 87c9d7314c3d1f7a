import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetStats } from "./fleet-stats";

let h: RefreshHarness;

beforeAll(async () => {
  h = await createRefreshHarness();
});
afterAll(async () => {
  await h?.close();
});

const ago = (ms: number) => new Date(Date.now() - ms);

describe("FleetStats", () => {
  it("counts connections per status, overdue ones, and refresh outcomes of the last hour only", async () => {
    const stats = new FleetStats(h.prisma, {
      firstWaitMs: 60_000,
      onError: (error) => {
        throw error;
      },
    });
    expect((await stats.read())?.byIntegration.size).toBe(0);

    const added = await Promise.all(Array.from({ length: 4 }, () => h.addConnection()));
    const [first, second, third] = added.map(({ connection }) => connection);
    if (!first || !second || !third) throw new Error("no connections");
    await h.prisma.connection.update({ where: { id: first.id }, data: { status: "needs_reauth" } });
    await h.prisma.connection.update({
      where: { id: second.id },
      data: { nextRefreshAt: ago(10 * 60_000) },
    });
    const event = (connectionId: string, outcome: string, createdAt: Date) => ({
      connectionId,
      integrationId: first.integrationId,
      type: outcome === "success" ? ("refreshed" as const) : ("refresh_failed" as const),
      outcome,
      createdAt,
    });
    // Ids grow with time, as they do when events are written: two hours ago, then recent.
    await h.prisma.connectionEvent.createMany({
      data: Array.from({ length: 20 }, (_, n) => event(third.id, "success", ago(7_200_000 - n))),
    });
    await h.prisma.connectionEvent.createMany({
      data: [
        event(third.id, "success", ago(50 * 60_000)),
        event(third.id, "success", ago(30 * 60_000)),
        event(second.id, "transient", ago(60_000)),
      ],
    });
    // Events that are no refresh do not count.
    await h.prisma.connectionEvent.create({
      data: { connectionId: third.id, integrationId: first.integrationId, type: "created" },
    });

    // Fresh counts, not the empty ones of a moment ago.
    const fresh = new FleetStats(h.prisma, { firstWaitMs: 60_000, onError: () => {} });
    const counts = (await fresh.read())?.byIntegration.get(first.integrationId);
    expect(counts).toMatchObject({
      byStatus: { active: 3, expired: 0, needs_reauth: 1, error: 0 },
      overdue: 1,
      refreshes: { success: 2, transient: 1 },
    });
    expect(counts?.oldestOverdueSeconds).toBeGreaterThanOrEqual(599);
  });

  it("serves the last counts while new ones are taken once they are too old", async () => {
    const stats = new FleetStats(h.prisma, { maxAgeMs: 0, firstWaitMs: 0, onError: () => {} });
    // firstWaitMs 0: the first read cannot wait for the first count.
    expect(await stats.read()).toBeUndefined();
    let counts = await stats.read();
    while (!counts) counts = await stats.read();
    // Too old at once (maxAgeMs 0): the next read answers these and takes new ones.
    expect(await stats.read()).toBe(counts);
  });
});
