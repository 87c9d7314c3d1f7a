import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { refreshConnection } from "./refresh-connection";
import { registerConnection } from "./register-connection";
import { createRefreshHarness, type RefreshHarness } from "./testing";

let h: RefreshHarness;
beforeAll(async () => {
  h = await createRefreshHarness({ unknownRetryLimit: 2 });
});
afterAll(() => h.close());

const refresh = (connectionId: string) =>
  refreshConnection(h.deps, { connectionId, source: "worker" });

/** The webhook events of one connection, oldest first, as the feed would list them. */
async function webhooksOf(connectionId: string) {
  const events = await h.prisma.webhookEvent.findMany({
    where: { connectionId },
    orderBy: [{ txid: "asc" }, { id: "asc" }],
  });
  return events.map((e) => [e.type, e.status, e.errorCode]);
}

const register = (externalId: string, refreshToken = "refresh-1") =>
  registerConnection(
    { ...h.deps, prisma: h.prisma },
    { integration: "mock", externalId, accessToken: "access-1", refreshToken },
  );

describe("webhook events of the refresh path", () => {
  it("a failure streak is announced once, and its end as recovered", async () => {
    const { connection, grant } = await h.addConnection();
    h.provider.failNext(3, { status: 503 }, { grantId: grant.grantId });
    for (let i = 0; i < 3; i += 1) await refresh(connection.id);
    expect(await webhooksOf(connection.id)).toEqual([
      ["connection.refresh_failed", "active", "http_503"],
    ]);
    // The outbox holds each event until a dispatcher fans it out.
    const outbox = await h.prisma.webhookOutbox.findMany({ include: { event: true } });
    expect(outbox.map((row) => row.event.connectionId)).toContain(connection.id);
    await refresh(connection.id);
    await refresh(connection.id);
    expect(await webhooksOf(connection.id)).toEqual([
      ["connection.refresh_failed", "active", "http_503"],
      ["connection.recovered", "active", null],
    ]);
  });

  it("a dead grant is needs_reauth, and new tokens recover it", async () => {
    const { connection: registered } = await register("bob");
    const { connection, grant } = await h.addConnection();
    h.provider.revoke(grant.refreshToken);
    await refresh(connection.id);
    expect(await webhooksOf(connection.id)).toEqual([
      ["connection.needs_reauth", "needs_reauth", "invalid_grant"],
    ]);
    expect(await webhooksOf(registered.id)).toEqual([["connection.created", "active", null]]);
    // Re-sending tokens for a healthy connection is no news; for a troubled one it is.
    await register("bob", "refresh-2");
    expect(await webhooksOf(registered.id)).toHaveLength(1);
    await h.prisma.connection.update({
      where: { id: registered.id },
      data: { status: "needs_reauth", lastErrorCode: "invalid_grant", lastErrorAt: new Date() },
    });
    await register("bob", "refresh-3");
    expect((await webhooksOf(registered.id)).at(-1)).toEqual([
      "connection.recovered",
      "active",
      null,
    ]);
  });

  it("unknown answers until giving up: refresh_failed, then error", async () => {
    const { connection, grant } = await h.addConnection();
    h.provider.failNext(2, { status: 418, body: "teapot" }, { grantId: grant.grantId });
    await refresh(connection.id);
    await refresh(connection.id);
    expect((await webhooksOf(connection.id)).map(([type, status]) => [type, status])).toEqual([
      ["connection.refresh_failed", "active"],
      ["connection.error", "error"],
    ]);
  });
});
