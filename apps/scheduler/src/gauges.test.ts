import type { Connection, Prisma } from "@evergreen/db";
import { createLogger, createSchedulerMetrics } from "@evergreen/observability";
import { createRedis } from "@evergreen/redis";
import { OVERDUE_GRACE_SECONDS, REFRESH_QUEUE } from "@evergreen/refresh";
import {
  createRefreshHarness,
  metricValue,
  type RefreshHarness,
  successfulRefresh,
  TEST_REDIS_URL,
} from "@evergreen/refresh/testing";
import { Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishGauges } from "./gauges";
import { type SweepDeps, sweep } from "./sweeps";

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

let h: RefreshHarness;
let deps: SweepDeps;

beforeAll(async () => {
  h = await createRefreshHarness();
  deps = {
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
  };
});
afterAll(() => h.close());

/** A connection of `integrationKey` with these columns set, relative to now. */
async function row(
  integrationKey: string,
  data: Prisma.ConnectionUpdateInput,
): Promise<Connection> {
  const { connection } = await h.addConnection({ integrationKey });
  return h.prisma.connection.update({ where: { id: connection.id }, data });
}

const ago = (ms: number) => new Date(Date.now() - ms);
const ahead = (ms: number) => new Date(Date.now() + ms);

describe("publishGauges", () => {
  it("counts what an on-call person needs, per integration, from real rows and keys", async () => {
    // "late": two overdue (10 min and 2 min past due), one inside the grace.
    await row("late", { status: "active", nextRefreshAt: ago(10 * MINUTE_MS) });
    const parkedRow = await row("late", { status: "expired", nextRefreshAt: ago(2 * MINUTE_MS) });
    await row("late", { status: "active", nextRefreshAt: ago((OVERDUE_GRACE_SECONDS / 2) * 1000) });
    // "dying": expired while active (one with nothing to refresh it with, which is no
    // failure), refresh tokens that die in 3 days (counted) or in 30 (not), and rows whose
    // status takes them out of every count.
    await row("dying", {
      status: "active",
      expiresAt: ago(MINUTE_MS),
      nextRefreshAt: ahead(DAY_MS),
    });
    await row("dying", { status: "active", expiresAt: ago(MINUTE_MS), refreshToken: null });
    await row("dying", { refreshTokenExpiresAt: ahead(3 * DAY_MS), nextRefreshAt: ahead(DAY_MS) });
    await row("dying", { refreshTokenExpiresAt: ahead(30 * DAY_MS), nextRefreshAt: ahead(DAY_MS) });
    await row("dying", {
      status: "needs_reauth",
      nextRefreshAt: ago(DAY_MS),
      expiresAt: ago(DAY_MS),
      refreshTokenExpiresAt: ahead(DAY_MS),
    });
    // "fine": nothing wrong, but a series at 0 all the same.
    await row("fine", { nextRefreshAt: ahead(DAY_MS) });

    const dying = await h.prisma.integration.findUniqueOrThrow({ where: { key: "dying" } });
    await h.deps.cooldown.start(dying.id, MINUTE_MS);
    const { change, event } = successfulRefresh(parkedRow);
    await h.deps.parked.park({ id: parkedRow.id, version: parkedRow.version }, change, event);
    const consumer = createRedis(TEST_REDIS_URL, "consumer");
    const worker = new Worker(REFRESH_QUEUE, async () => undefined, {
      connection: consumer,
      prefix: h.prefix,
    });
    await worker.waitUntilReady();

    try {
      await publishGauges(deps);
    } finally {
      await worker.close();
      await consumer.quit();
    }
    const { metrics } = deps;
    const perIntegration = async (gauge: typeof metrics.overdue) =>
      Object.fromEntries(
        await Promise.all(
          ["late", "dying", "fine"].map(async (integration) => [
            integration,
            await metricValue(gauge, { integration }),
          ]),
        ),
      );
    expect(await perIntegration(metrics.overdue)).toEqual({ late: 2, dying: 0, fine: 0 });
    expect(await perIntegration(metrics.expiredActive)).toEqual({ late: 0, dying: 1, fine: 0 });
    expect(await perIntegration(metrics.refreshTokensExpiring)).toEqual({
      late: 0,
      dying: 1,
      fine: 0,
    });
    expect(await perIntegration(metrics.coolingDown)).toEqual({ late: 0, dying: 1, fine: 0 });
    const oldest = await metricValue(metrics.overdueOldest);
    expect(oldest).toBeGreaterThanOrEqual(600);
    expect(oldest).toBeLessThan(660);
    expect(await metricValue(metrics.parkedAnswers)).toBe(1);
    const sealed =
      (await h.prisma.connection.count()) +
      (await h.prisma.connection.count({ where: { refreshToken: { not: null } } })) +
      (await h.prisma.integration.count());
    expect(await metricValue(metrics.ciphertexts, { key_id: "test" })).toBe(sealed);
    expect(await metricValue(metrics.queueWorkers)).toBe(1);
    expect(await metricValue(metrics.connections, { provider: "oauth2", status: "active" })).toBe(
      7,
    );

    // The registry lists no `failed` state: no refresh job can end there.
    const text = await h.metrics.registry.metrics();
    expect(text).toContain('evergreen_queue_jobs{state="delayed"}');
    expect(text).not.toContain('state="failed"');
  });

  it("shows the revocation backlog a mass delete leaves: rows pending and the oldest's age", async () => {
    await publishGauges(deps);
    expect(await metricValue(deps.metrics.revocationsPending)).toBe(0);
    expect(await metricValue(deps.metrics.revocationsOldest)).toBe(0);
    const { connection } = await h.addConnection({ integrationKey: "revoking" });
    const pending = (minutesAgo: number) => ({
      id: crypto.randomUUID(),
      connectionId: connection.id,
      integrationId: connection.integrationId,
      token: connection.accessToken,
      tokenType: "access_token",
      giveUpAt: ahead(DAY_MS),
      createdAt: ago(minutesAgo * MINUTE_MS),
    });
    await h.prisma.pendingRevocation.createMany({
      data: [pending(30), pending(5), pending(0)],
    });
    await publishGauges(deps);
    expect(await metricValue(deps.metrics.revocationsPending)).toBe(3);
    const oldest = await metricValue(deps.metrics.revocationsOldest);
    expect(oldest).toBeGreaterThanOrEqual(30 * 60);
    expect(oldest).toBeLessThan(31 * 60);
    await h.prisma.pendingRevocation.deleteMany({ where: { connectionId: connection.id } });
  });

  it("reads 0 for the oldest overdue refresh when none is overdue", async () => {
    await h.prisma.connection.updateMany({ data: { nextRefreshAt: ahead(DAY_MS) } });
    await publishGauges(deps);
    expect(await metricValue(deps.metrics.overdueOldest)).toBe(0);
    expect(await metricValue(deps.metrics.overdue, { integration: "late" })).toBe(0);
  });
});

describe("sweep", () => {
  it("records its duration and the time it last succeeded", async () => {
    const before = Date.now() / 1000;
    await sweep(deps);
    expect(await metricValue(deps.metrics.sweepLastSuccess)).toBeGreaterThanOrEqual(before);
    const { values } = await deps.metrics.sweepDuration.get();
    expect(
      values.find((v) => v.metricName === "evergreen_sweep_duration_seconds_count")?.value,
    ).toBe(1);
  });
});
