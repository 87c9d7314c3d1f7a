import type { Connection, Integration } from "@evergreen/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { refreshJobId } from "./jobs";
import { type RegistrationDeps, registerConnection } from "./register-connection";
import { registerConnectionBatch } from "./register-connection-batch";
import type { RegistrationTokens } from "./registration-rules";
import { createRefreshHarness, type RefreshHarness } from "./testing";
import { openAccessToken, openRefreshToken } from "./token-cipher";

let h: RefreshHarness;
let deps: RegistrationDeps;
let integration: Integration;
const NOW = new Date("2030-01-01T00:00:00.000Z");
const RT_END = new Date("2030-03-01T00:00:00.000Z");

beforeAll(async () => {
  h = await createRefreshHarness();
  await h.addConnection({ integrationKey: "mock" });
  integration = await h.prisma.integration.findUniqueOrThrow({ where: { key: "mock" } });
  deps = { ...h.deps, prisma: h.prisma, now: () => NOW, random: () => 0 };
});
afterAll(() => h.close());

/** A connection in trouble (failing, expired, or refused), with a refresh token's known end. */
async function troubled(status: "expired" | "needs_reauth" = "expired"): Promise<Connection> {
  const { connection } = await h.addConnection({ integrationKey: "mock" });
  return h.prisma.connection.update({
    where: { id: connection.id },
    data: {
      status,
      consecutiveFailures: 3,
      lastErrorCode: status === "expired" ? "server_error" : "invalid_grant",
      lastErrorMessage: status === "expired" ? "provider down" : "grant revoked",
      lastErrorAt: NOW,
      refreshTokenExpiresAt: RT_END,
      metadata: { plan: "pro" },
    },
  });
}

/** Everything the registration rules decide, not what differs per row (ids, ciphertexts). */
const ruled = (row: Connection) => ({
  status: row.status,
  version: row.version,
  tokenType: row.tokenType,
  scope: row.scope,
  expiresAt: row.expiresAt,
  nextRefreshAt: row.nextRefreshAt,
  refreshTokenExpiresAt: row.refreshTokenExpiresAt,
  consecutiveFailures: row.consecutiveFailures,
  consecutiveUnknown: row.consecutiveUnknown,
  lastErrorCode: row.lastErrorCode,
  lastErrorMessage: row.lastErrorMessage,
  lastErrorAt: row.lastErrorAt,
  metadata: row.metadata,
});

const eventsOf = async (connectionId: string) => ({
  events: (await h.prisma.connectionEvent.findMany({ where: { connectionId } })).map((e) => e.type),
  webhooks: (await h.prisma.webhookEvent.findMany({ where: { connectionId } })).map((e) => e.type),
});

describe("registerConnectionBatch", () => {
  it("writes what registerConnection writes: same row, events, webhook event and job", async () => {
    const [single, batched] = [await troubled(), await troubled()];
    const tokens = (row: Connection): RegistrationTokens => ({
      externalId: row.externalId,
      accessToken: "fresh-access",
      expiresIn: 3600,
      scope: "read write",
    });
    const one = await registerConnection(deps, { integration: "mock", ...tokens(single) });
    const outcomes = await registerConnectionBatch(deps, integration, [tokens(batched)]);
    expect(outcomes).toEqual(["updated"]);
    const stored = await h.prisma.connection.findUniqueOrThrow({ where: { id: batched.id } });

    expect(ruled(stored)).toEqual(ruled(one.connection));
    // Kept: the stored refresh token (no new one came), its known end and the metadata.
    expect(stored).toMatchObject({
      status: "active",
      version: 1,
      refreshTokenExpiresAt: RT_END,
      metadata: { plan: "pro" },
      lastErrorCode: null,
      consecutiveFailures: 0,
    });
    expect(stored.refreshToken).toBe(batched.refreshToken);
    expect(openAccessToken(h.keyRing, stored.id, stored.accessToken)).toBe("fresh-access");
    expect(await eventsOf(batched.id)).toEqual(await eventsOf(single.id));
    expect(await eventsOf(batched.id)).toEqual({
      events: ["updated"],
      webhooks: ["connection.recovered"],
    });
    const job = await h.queue.getJob(refreshJobId({ connectionId: batched.id, version: 1 }));
    expect(job).toBeTruthy();
  });

  it("drops a refused refresh token as registerConnection does, when none comes", async () => {
    const [single, batched] = [await troubled("needs_reauth"), await troubled("needs_reauth")];
    const tokens = (row: Connection): RegistrationTokens => ({
      externalId: row.externalId,
      accessToken: "fresh-access",
      expiresIn: 3600,
    });
    const one = await registerConnection(deps, { integration: "mock", ...tokens(single) });
    await registerConnectionBatch(deps, integration, [tokens(batched)]);
    const stored = await h.prisma.connection.findUniqueOrThrow({ where: { id: batched.id } });
    expect(ruled(stored)).toEqual(ruled(one.connection));
    expect(stored).toMatchObject({
      status: "active",
      refreshToken: null,
      refreshTokenExpiresAt: null,
      nextRefreshAt: stored.expiresAt,
    });
  });

  it("creates new rows with tokens sealed for their id, a created event and a job each", async () => {
    const outcomes = await registerConnectionBatch(deps, integration, [
      { externalId: "batch-new-1", accessToken: "a1", refreshToken: "r1", expiresIn: 3600 },
      { externalId: "batch-new-2", accessToken: "a2", refreshToken: "r2", expiresIn: 3600 },
    ]);
    expect(outcomes).toEqual(["created", "created"]);
    const rows = await h.prisma.connection.findMany({
      where: { externalId: { in: ["batch-new-1", "batch-new-2"] } },
      orderBy: { externalId: "asc" },
    });
    expect(rows.map((r) => openRefreshToken(h.keyRing, r.id, r.refreshToken ?? ""))).toEqual([
      "r1",
      "r2",
    ]);
    for (const row of rows) {
      expect(row).toMatchObject({ version: 0, status: "active", metadata: {} });
      expect(row.nextRefreshAt).toEqual(new Date(NOW.getTime() + 3_600_000 - 300_000));
      expect(await eventsOf(row.id)).toEqual({
        events: ["created"],
        webhooks: ["connection.created"],
      });
      expect(await h.queue.getJob(refreshJobId({ connectionId: row.id, version: 0 }))).toBeTruthy();
    }
  });

  it("leaves to registerConnection a row whose refresh is in flight when it would keep its refresh token", async () => {
    const { connection } = await h.addConnection({ integrationKey: "mock" });
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { claimVersion: 0, claimExpiresAt: new Date(Date.now() + 60_000) },
    });
    const outcomes = await registerConnectionBatch(deps, integration, [
      { externalId: connection.externalId, accessToken: "fresh", expiresIn: 3600 },
    ]);
    expect(outcomes).toEqual(["single"]);
    const stored = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(stored.version).toBe(0);
    expect(stored.accessToken).toBe(connection.accessToken);
  });

  it("writes nothing in a dry run", async () => {
    const outcomes = await registerConnectionBatch(
      deps,
      integration,
      [{ externalId: "batch-dry", accessToken: "a", refreshToken: "r", expiresIn: 3600 }],
      { dryRun: true },
    );
    expect(outcomes).toEqual(["created"]);
    expect(await h.prisma.connection.count({ where: { externalId: "batch-dry" } })).toBe(0);
  });
});
