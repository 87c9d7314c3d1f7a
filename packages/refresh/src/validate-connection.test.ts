import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { refreshConnection } from "./refresh-connection";
import {
  createRefreshHarness,
  metricValue,
  type RefreshHarness,
  redisDatabaseUrl,
} from "./testing";
import {
  type ValidationDeps,
  ValidationUnsupportedError,
  validateConnection,
} from "./validate-connection";

let h: RefreshHarness;
let deps: ValidationDeps;
beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: redisDatabaseUrl(4) });
  deps = { ...h.deps, prisma: h.prisma };
});
afterAll(() => h.close());

/** A connection of an integration that introspects at the mock provider (RFC 7662). */
async function introspected(options: Parameters<RefreshHarness["addConnection"]>[0] = {}) {
  const added = await h.addConnection({ integrationKey: "introspected", ...options });
  await h.prisma.integration.update({
    where: { key: "introspected" },
    data: { introspectionUrl: h.provider.introspectionUrl },
  });
  return added;
}

describe("validateConnection", () => {
  it("a live token is valid, with the scope and expiry the provider states", async () => {
    const { connection } = await introspected({ scope: "read write" });
    const result = await validateConnection(deps, connection.id);
    expect(result).toMatchObject({ valid: true, scope: "read write", revoked: false });
    expect(result?.expiresAt?.getTime()).toBeGreaterThan(Date.now());
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row.lastValidatedAt).toEqual(result?.checkedAt);
    expect(row.version).toBe(connection.version);
  });

  it("finds a revoked grant before any refresh would: needs_reauth, event, webhook", async () => {
    const { connection, grant } = await introspected();
    h.provider.revoke(grant.accessToken);
    const result = await validateConnection(deps, connection.id);
    expect(result).toMatchObject({ valid: false, revoked: true });

    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({
      status: "needs_reauth",
      version: connection.version + 1,
      nextRefreshAt: null,
      lastErrorCode: "token_revoked",
    });
    // The grant's refresh token was never sent: the provider counted no refresh.
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(0);
    const events = await h.prisma.connectionEvent.findMany({
      where: { connectionId: connection.id },
    });
    expect(events.map((e) => [e.type, e.outcome, e.errorCode])).toEqual([
      ["needs_reauth", "revoked", "token_revoked"],
    ]);
    const outbox = await h.prisma.webhookOutbox.findMany({
      where: { event: { connectionId: connection.id } },
      include: { event: true },
    });
    expect(outbox.map((o) => [o.event.type, o.event.status])).toEqual([
      ["connection.needs_reauth", "needs_reauth"],
    ]);
    // A second verdict changes nothing: the connection is already stopped.
    expect(await validateConnection(deps, connection.id)).toMatchObject({ revoked: false });
    expect(await h.prisma.connectionEvent.count({ where: { connectionId: connection.id } })).toBe(
      1,
    );
  });

  it("answers an expired token invalid without asking, leaving the grant to the refresh", async () => {
    const { connection, grant } = await introspected({ expiresInSeconds: -60 });
    const before = h.provider.requests;
    const result = await validateConnection(deps, connection.id);
    expect(result).toMatchObject({ valid: false, revoked: false, expiresAt: connection.expiresAt });
    expect(h.provider.requests).toBe(before);
    const run = await refreshConnection(h.deps, { connectionId: connection.id, source: "api" });
    expect(run).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
  });

  it("leaves the verdict to a refresh in flight (a live claim on the version)", async () => {
    const { connection, grant } = await introspected();
    h.provider.revoke(grant.accessToken);
    // Some providers kill the old access token when a refresh issues a new one.
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { claimVersion: connection.version, claimExpiresAt: new Date(Date.now() + 60_000) },
    });
    expect(await validateConnection(deps, connection.id)).toMatchObject({
      valid: false,
      revoked: false,
    });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "active", version: connection.version });
  });

  it("is unsupported where neither the provider nor the integration can check a token", async () => {
    const { connection } = await h.addConnection();
    await expect(validateConnection(deps, connection.id)).rejects.toBeInstanceOf(
      ValidationUnsupportedError,
    );
  });

  it("counts each verdict in evergreen_validations_total by provider and outcome", async () => {
    const counted = (outcome: string) =>
      metricValue(h.metrics.validationsTotal, { provider: "oauth2", outcome });
    const outcomes = ["valid", "invalid", "revoked", "expired", "unsupported"];
    const before = await Promise.all(outcomes.map(counted));
    const live = await introspected();
    const revoked = await introspected();
    const expired = await introspected({ expiresInSeconds: -60 });
    const unsupported = await h.addConnection();
    h.provider.revoke(revoked.grant.accessToken);
    await validateConnection(deps, live.connection.id);
    await validateConnection(deps, revoked.connection.id);
    // Asked again: still invalid, but the connection has already stopped.
    await validateConnection(deps, revoked.connection.id);
    await validateConnection(deps, expired.connection.id);
    await validateConnection(deps, unsupported.connection.id).catch(() => undefined);
    const after = await Promise.all(outcomes.map(counted));
    expect(after.map((value, index) => value - (before[index] ?? 0))).toEqual([1, 1, 1, 1, 1]);
  });

  it("is null for a connection that does not exist", async () => {
    expect(await validateConnection(deps, crypto.randomUUID())).toBeNull();
  });
});
