import { createLogger, createSchedulerMetrics } from "@evergreen/observability";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSweeps } from "./sweeps";

let h: RefreshHarness;
beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: redisDatabaseUrl(4) });
});
afterAll(() => h.close());

describe("startSweeps", () => {
  it("validates due connections and announces reauth_soon after the sweep", async () => {
    const revoked = await h.addConnection({ integrationKey: "periodic" });
    const ending = await h.addConnection({ integrationKey: "periodic" });
    await h.prisma.integration.update({
      where: { key: "periodic" },
      data: { introspectionUrl: h.provider.introspectionUrl, validateIntervalSeconds: 60 },
    });
    await h.prisma.connection.update({
      where: { id: ending.connection.id },
      data: { refreshTokenExpiresAt: new Date(Date.now() + 86_400_000) },
    });
    h.provider.revoke(revoked.grant.accessToken);

    const sweeps = startSweeps(
      {
        prisma: h.prisma,
        queue: h.queues,
        redis: h.redis,
        cooldown: h.deps.cooldown,
        parked: h.deps.parked,
        metrics: createSchedulerMetrics(h.metrics.registry),
        log: createLogger({ name: "test", level: "silent" }),
        eventRetentionDays: 30,
        validation: { ...h.deps, prisma: h.prisma },
        reauthSoonDays: 7,
      },
      3_600_000,
    );
    // stop() waits for the run in progress: the first sweep and what follows it.
    await sweeps.stop();

    const events = await h.prisma.webhookEvent.findMany({ orderBy: { id: "asc" } });
    expect(events.map((e) => [e.type, e.connectionId])).toEqual(
      expect.arrayContaining([
        ["connection.needs_reauth", revoked.connection.id],
        ["connection.reauth_soon", ending.connection.id],
      ]),
    );
    const row = await h.prisma.connection.findUniqueOrThrow({
      where: { id: revoked.connection.id },
    });
    expect(row.status).toBe("needs_reauth");
  });
});
