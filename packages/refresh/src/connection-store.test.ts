import type { Connection } from "@evergreen/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionChange } from "./connection-store";
import { createRefreshHarness, type RefreshHarness, successfulRefresh } from "./testing";

let h: RefreshHarness;
beforeAll(async () => {
  h = await createRefreshHarness();
});
afterAll(() => h.close());

const refreshed = {
  type: "refreshed",
  outcome: "success",
  errorCode: null,
  message: null,
} as const;

function changeOf(row: Connection, refreshCount: number): ConnectionChange {
  return successfulRefresh(row, {
    accessToken: `${row.accessToken}-new`,
    expiresAt: new Date("2030-01-01T00:00:00.000Z"),
    nextRefreshAt: new Date("2029-12-31T23:55:00.000Z"),
    refreshCount,
  }).change;
}

describe("ConnectionStore", () => {
  it("loads many connections at once, each with its integration, and null for a missing one", async () => {
    const rows = await Promise.all([h.addConnection(), h.addConnection()]);
    const missing = "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80";
    const loaded = await Promise.all([
      ...rows.map(({ connection }) => h.deps.store.load(connection.id)),
      h.deps.store.load(missing),
    ]);
    expect(loaded.map((entry) => entry?.connection.id)).toEqual([
      ...rows.map(({ connection }) => connection.id),
      undefined,
    ]);
    expect(loaded[0]?.integration).toMatchObject({
      id: rows[0]?.connection.integrationId,
      provider: "oauth2",
      clientId: h.provider.clientId,
      tokenUrl: h.provider.tokenUrl,
      scopes: [],
      refreshBufferSeconds: null,
    });
    expect(loaded[0]?.connection.expiresAt).toBeInstanceOf(Date);
  });

  it("writes a batch row by row: each fenced by its own version, each with its event", async () => {
    const [fresh, stale, other] = await Promise.all([
      h.addConnection(),
      h.addConnection(),
      h.addConnection(),
    ]);
    if (!fresh || !stale || !other) throw new Error("setup");
    // Someone moved `stale` on after we read it.
    await h.prisma.connection.update({
      where: { id: stale.connection.id },
      data: { version: { increment: 1 } },
    });
    const written = await Promise.all(
      [fresh, stale, other].map(({ connection }) =>
        h.deps.store.write(
          { id: connection.id, version: connection.version },
          changeOf(connection, 7),
          refreshed,
        ),
      ),
    );
    expect(written.map((row) => row?.id ?? null)).toEqual([
      fresh.connection.id,
      null,
      other.connection.id,
    ]);
    expect(written[0]).toMatchObject({
      accessToken: `${fresh.connection.accessToken}-new`,
      version: 1,
      refreshCount: 7,
      status: "active",
      expiresAt: new Date("2030-01-01T00:00:00.000Z"),
    });
    const untouched = await h.prisma.connection.findUniqueOrThrow({
      where: { id: stale.connection.id },
    });
    expect(untouched).toMatchObject({ accessToken: stale.connection.accessToken, version: 1 });
    const events = await h.prisma.connectionEvent.findMany({
      where: { connectionId: { in: [fresh, stale, other].map(({ connection }) => connection.id) } },
    });
    expect(events.map((event) => event.connectionId).sort()).toEqual(
      [fresh.connection.id, other.connection.id].sort(),
    );
    expect(events[0]).toMatchObject({ type: "refreshed", outcome: "success" });
  });

  it("never puts two writes of one connection in one statement: exactly one of them lands", async () => {
    const { connection } = await h.addConnection();
    const fence = { id: connection.id, version: connection.version };
    const [first, second] = await Promise.all([
      h.deps.store.write(fence, changeOf(connection, 1), refreshed),
      h.deps.store.write(fence, changeOf(connection, 2), refreshed),
    ]);
    // The two statements race on separate pooled connections: either may win, never both.
    const winners = [first, second].filter((row) => row !== null);
    expect(winners).toHaveLength(1);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ version: 1, refreshCount: winners[0]?.refreshCount });
  });

  it("fails only the bad row of a batch: the others are stored", async () => {
    const [good, bad] = await Promise.all([h.addConnection(), h.addConnection()]);
    if (!good || !bad) throw new Error("setup");
    const [stored, refused] = await Promise.allSettled([
      h.deps.store.write(
        { id: good.connection.id, version: 0 },
        changeOf(good.connection, 1),
        refreshed,
      ),
      // PostgreSQL refuses NUL in text: the whole statement fails.
      h.deps.store.write(
        { id: bad.connection.id, version: 0 },
        { ...changeOf(bad.connection, 1), tokenType: "Bearer\u0000" },
        refreshed,
      ),
    ]);
    expect(stored).toMatchObject({ status: "fulfilled", value: { id: good.connection.id } });
    expect(refused.status).toBe("rejected");
  });

  it("claims a row version once until the claim runs out or the row moves on", async () => {
    const { connection } = await h.addConnection();
    const claim = {
      id: connection.id,
      version: 0,
      leaseMs: 60_000,
      holder: "first",
      mark: null,
      rotates: true,
    };
    const [first, second] = await Promise.all([
      h.deps.store.claim(claim),
      h.deps.store.claim(claim),
    ]);
    expect([first, second].filter((held) => held === null)).toHaveLength(1);
    expect(first ?? second).toMatchObject({ inDoubtSince: null });
    expect(await h.deps.store.claim(claim)).toBeNull();
    expect(await h.deps.store.claim({ ...claim, version: 1 })).toBeNull();

    // A stored answer clears the claim; the new version can be claimed at once.
    const stored = await h.deps.store.write(
      { id: connection.id, version: 0 },
      changeOf(connection, 1),
      refreshed,
    );
    expect(stored?.version).toBe(1);
    expect(await h.deps.store.claim({ ...claim, version: 1 })).toMatchObject({
      inDoubtSince: null,
    });

    // A claim that has run out (its holder died) can be taken again. Its holder may have
    // sent the refresh token (its send mark says so, or is gone): the refresh is in doubt from
    // the claim's start, on the row, and given back the new claim leaves the doubt there.
    const ranOut = await h.prisma.$queryRaw<{ at: Date }[]>`
      UPDATE connections SET "claimExpiresAt" = now() WHERE id = ${connection.id}::uuid
      RETURNING "claimExpiresAt" AS at`;
    const since = new Date((ranOut[0]?.at.getTime() ?? 0) - 60_000);
    const taken = await h.deps.store.claim({
      ...claim,
      version: 1,
      holder: "b",
      mark: "1:first:sent",
    });
    expect(taken).toMatchObject({ inDoubtSince: since });
    if (!taken) throw new Error("not claimed");
    await h.deps.store.releaseClaim({ id: connection.id, version: 1 }, taken);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ claimVersion: null, inDoubtSince: since });
  });

  it("reads an abandoned claim as never sent only by its holder's own claimed mark, at a rotating provider", async () => {
    const abandoned = async (holder: string) => {
      const { connection } = await h.addConnection();
      const claim = { id: connection.id, version: 0, leaseMs: 60_000, mark: null, rotates: true };
      await h.deps.store.claim({ ...claim, holder });
      await h.prisma.$executeRaw`
        UPDATE connections SET "claimExpiresAt" = now() WHERE id = ${connection.id}::uuid`;
      return (mark: string | null, rotates = true) =>
        h.deps.store.claim({ ...claim, holder: "next", mark, rotates });
    };
    expect(await (await abandoned("a"))("0:a:claimed")).toMatchObject({ inDoubtSince: null });
    expect(await (await abandoned("a"))("0:a:sent")).not.toMatchObject({ inDoubtSince: null });
    expect(await (await abandoned("a"))("0:other:claimed")).not.toMatchObject({
      inDoubtSince: null,
    });
    expect(await (await abandoned("a"))(null)).not.toMatchObject({ inDoubtSince: null });
    expect(await (await abandoned("a"))(null, false)).toMatchObject({ inDoubtSince: null });
  });

  it("writes a configuration failure only while the integration is as it was read", async () => {
    const { connection } = await h.addConnection({ integrationKey: "fenced" });
    const loaded = await h.deps.store.load(connection.id.toUpperCase());
    if (!loaded) throw new Error("an uppercase id finds the row too");
    const stop = { ...changeOf(connection, 0), status: "error" as const };
    const failed = {
      type: "refresh_failed",
      outcome: "invalid_client",
      errorCode: "invalid_client",
      message: null,
    } as const;
    // The operator fixes the integration while the refresh with the old secret is out.
    await h.prisma.integration.update({
      where: { id: connection.integrationId },
      data: { clientId: "fixed" },
    });
    const stale = await h.deps.store.write(
      { id: connection.id, version: 0, integrationUpdatedAt: loaded.integration.updatedAt },
      stop,
      failed,
    );
    expect(stale).toBeNull();
    const current = await h.deps.store.load(connection.id);
    const fresh = await h.deps.store.write(
      { id: connection.id, version: 0, integrationUpdatedAt: current?.integration.updatedAt },
      stop,
      failed,
    );
    expect(fresh).toMatchObject({ status: "error", version: 1 });
  });
});
