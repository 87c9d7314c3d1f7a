import { randomUUID } from "node:crypto";
import { createPrismaClient, type PrismaClient } from "@evergreen/db";
import { createTestDatabase, type TestDatabase } from "@evergreen/db/testing";
import { redisDatabaseUrl } from "@evergreen/refresh/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AppProcess, startApp } from "./support/app-process";

// The scheduler uses the production queue prefix: this file owns Redis database 14.
const REDIS_URL = redisDatabaseUrl(14);

let db: TestDatabase;
let prisma: PrismaClient;
let scheduler: AppProcess | undefined;
beforeEach(async () => {
  db = await createTestDatabase();
  prisma = createPrismaClient({ url: db.url, poolSize: 2 });
});
afterEach(async () => {
  scheduler?.child.kill("SIGTERM");
  await scheduler?.exited;
  await prisma.$disconnect();
  await db.drop();
});

describe("scheduler process", () => {
  it("removes events older than EVENT_RETENTION_DAYS, webhook ones with their deliveries", async () => {
    await prisma.$executeRaw`
      INSERT INTO connection_events ("connectionId", "integrationId", type, message, "createdAt")
      SELECT gen_random_uuid(), gen_random_uuid(), 'refreshed', age::text,
             now() - make_interval(secs => age * 86400)
        FROM unnest(${[10, 3, 1.5, 0]}::float8[]) AS a(age)`;
    // Webhook events labelled with their age; the 3-day-old one still has a delivery pending.
    await prisma.$executeRaw`
      WITH endpoint AS (
        INSERT INTO webhook_endpoints (id, url, events, secret, "updatedAt")
        VALUES (gen_random_uuid(), 'https://receiver.test/', '{connection.created}', 'sealed', now())
        RETURNING id
      ), events AS (
        INSERT INTO webhook_events (type, "connectionId", integration, "externalId", status, "createdAt")
        SELECT 'connection.created', gen_random_uuid(), 'github', age::text, 'active',
               now() - make_interval(secs => age * 86400)
          FROM unnest(${[10, 3, 1.5]}::float8[]) AS a(age)
        RETURNING id, "externalId", "createdAt"
      )
      INSERT INTO webhook_deliveries ("endpointId", "eventId", status, "giveUpAt")
      SELECT endpoint.id, events.id,
             (CASE events."externalId" WHEN '3' THEN 'pending' ELSE 'succeeded' END)::"WebhookDeliveryStatus",
             events."createdAt" + interval '3 days'
        FROM endpoint, events`;
    const integration = await prisma.integration.create({
      data: { key: "github", provider: "github", clientId: "id", clientSecret: "sealed" },
    });
    await prisma.connectSession.createMany({
      data: [2, 0].map((days) => ({
        id: randomUUID(),
        stateHash: `state-${days}`,
        integrationId: integration.id,
        externalId: String(days),
        returnUrl: "https://app.test/done",
        redirectUri: "https://evergreen.test/oauth/callback",
        scopes: [],
        expiresAt: new Date(Date.now() - days * 86_400_000),
      })),
    });

    scheduler = startApp("scheduler", {
      NODE_ENV: "test",
      DATABASE_URL: db.url,
      REDIS_URL,
      METRICS_PORT: "0",
      EVENT_RETENTION_DAYS: "2",
    });
    const pruned = await scheduler.waitForLog((line) => line.msg === "connection events pruned");
    expect(pruned).toMatchObject({ removed: 2, stopped: "done" });
    const webhooks = await scheduler.waitForLog((line) => line.msg === "webhook events pruned");
    expect(webhooks).toMatchObject({ removed: 1, stopped: "done" });
    const sessions = await scheduler.waitForLog((line) => line.msg === "connect sessions pruned");
    expect(sessions).toMatchObject({ removed: 1, stopped: "done" });

    const left = await prisma.connectionEvent.findMany({ select: { message: true } });
    expect(left.map((event) => event.message).sort()).toEqual(["0", "1.5"]);
    const webhookEvents = await prisma.webhookEvent.findMany({
      select: { externalId: true, deliveries: { select: { status: true } } },
      orderBy: { createdAt: "asc" },
    });
    expect(webhookEvents).toEqual([
      { externalId: "3", deliveries: [{ status: "pending" }] },
      { externalId: "1.5", deliveries: [{ status: "succeeded" }] },
    ]);
    expect(await prisma.webhookDelivery.count()).toBe(2);
    const sessionsLeft = await prisma.connectSession.findMany({ select: { externalId: true } });
    expect(sessionsLeft).toEqual([{ externalId: "0" }]);
  });
});
