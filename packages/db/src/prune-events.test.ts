import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createPrismaClient } from "./client";
import type { PrismaClient } from "./generated/prisma/client";
import { pruneConnectionEvents, pruneConnectSessions, pruneWebhookEvents } from "./prune-events";
import { createTestDatabase, type TestDatabase } from "./testing";

const DAY_MS = 86_400_000;

let db: TestDatabase;
let prisma: PrismaClient;
beforeAll(async () => {
  db = await createTestDatabase();
  prisma = createPrismaClient({ url: db.url, poolSize: 2 });
});
afterAll(async () => {
  await prisma.$disconnect();
  await db.drop();
});
beforeEach(async () => {
  // TRUNCATE fires no row trigger: the one way for a test to start from an empty log.
  await prisma.$executeRawUnsafe(
    "TRUNCATE connection_events, webhook_events, webhook_endpoints, connect_sessions, integrations CASCADE",
  );
});

/** Events of these ages in days, in this (id) order; each labelled with its age. */
async function insertEvents(ages: readonly number[]): Promise<void> {
  await prisma.$executeRaw`
    INSERT INTO connection_events ("connectionId", "integrationId", type, message, "createdAt")
    SELECT gen_random_uuid(), gen_random_uuid(), 'refreshed', age::text,
           now() - make_interval(secs => age * 86400)
      FROM unnest(${ages}::float8[]) WITH ORDINALITY AS a(age, position)
     ORDER BY position`;
}

async function remainingAges(): Promise<number[]> {
  const rows = await prisma.connectionEvent.findMany({ select: { message: true } });
  return rows.map((row) => Number(row.message)).sort((a, b) => a - b);
}

describe("pruneConnectionEvents", () => {
  it("removes events older than the retention and keeps newer ones", async () => {
    // Out of age order on purpose: a batch looks at the oldest ids, whatever their ages.
    await insertEvents([31, 400, 29.9, 30.01, 0, 1, 45]);
    const result = await pruneConnectionEvents(prisma, { retentionDays: 30 });
    expect(result).toEqual({ removed: 4, batches: 2, stopped: "done" });
    expect(await remainingAges()).toEqual([0, 1, 29.9]);
  });

  it("works off a backlog in batches, at most maxBatches per call", async () => {
    await insertEvents([60, 59, 58, 57, 56, 55, 54, 3, 2]);
    const options = { retentionDays: 7, batchSize: 2, maxBatches: 3 };
    expect(await pruneConnectionEvents(prisma, options)).toEqual({
      removed: 6,
      batches: 3,
      stopped: "limit",
    });
    expect(await remainingAges()).toEqual([2, 3, 54]);
    expect(await pruneConnectionEvents(prisma, options)).toEqual({
      removed: 1,
      batches: 2,
      stopped: "done",
    });
    expect(await remainingAges()).toEqual([2, 3]);
  });

  it("stops at once while another prune holds the lock, and goes on once it is released", async () => {
    await insertEvents([40, 1]);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock(hashtext('prune_connection_events'))");
      expect(await pruneConnectionEvents(prisma, { retentionDays: 30 })).toEqual({
        removed: 0,
        batches: 0,
        stopped: "busy",
      });
      await holder.query("COMMIT");
    } finally {
      await holder.end();
    }
    expect((await pruneConnectionEvents(prisma, { retentionDays: 30 })).removed).toBe(1);
    expect(await remainingAges()).toEqual([1]);
  });

  it("removes each row once when two processes prune at the same time", async () => {
    const old = Array.from({ length: 60 }, (_, index) => 31 + index);
    await insertEvents([...old, 5, 0]);
    const other = createPrismaClient({ url: db.url, poolSize: 2 });
    try {
      const options = { retentionDays: 30, batchSize: 4 };
      const results = await Promise.all([
        pruneConnectionEvents(prisma, options),
        pruneConnectionEvents(other, options),
      ]);
      // Whichever stops on the other's lock leaves the rest to it, which runs to the end.
      expect(results.map((result) => result.stopped)).toContain("done");
      expect(results.reduce((sum, result) => sum + result.removed, 0)).toBe(60);
    } finally {
      await other.$disconnect();
    }
    expect(await remainingAges()).toEqual([0, 5]);
  });
});

describe("the append-only guard on connection_events", () => {
  const refused = /append-only/;

  it("refuses an ordinary DELETE or UPDATE, even of events past retention", async () => {
    await insertEvents([400]);
    await expect(prisma.$executeRawUnsafe("DELETE FROM connection_events")).rejects.toThrow(
      refused,
    );
    await expect(
      prisma.$executeRawUnsafe("UPDATE connection_events SET message = 'rewritten'"),
    ).rejects.toThrow(refused);
    expect(await remainingAges()).toEqual([400]);
  });

  it("refuses a hand-set cutoff that would delete an event younger than a day", async () => {
    await insertEvents([0.5]);
    const cutoff = new Date(Date.now() - 0.25 * DAY_MS).toISOString();
    await expect(
      prisma.$transaction([
        prisma.$executeRaw`SELECT set_config('evergreen.prune_events_before', ${cutoff}, true)`,
        prisma.$executeRawUnsafe("DELETE FROM connection_events"),
      ]),
    ).rejects.toThrow(refused);
    expect(await remainingAges()).toEqual([0.5]);
  });

  it("refuses a retention under one day", async () => {
    await expect(pruneConnectionEvents(prisma, { retentionDays: 0 })).rejects.toThrow(
      /must be positive/,
    );
  });
});

type DeliveryStatus = "pending" | "succeeded" | "failed";

interface WebhookEventSeed {
  readonly age: number;
  /** One delivery per entry, each to its own endpoint, with one attempt. */
  readonly deliveries?: readonly DeliveryStatus[];
  /** Not yet fanned out: the event still has its outbox row. */
  readonly inOutbox?: boolean;
}

/**
 * Webhook events of these ages in days, oldest first in the order given (txid = position,
 * as if each came from its own transaction); each labelled with its age in `externalId`.
 */
async function insertWebhookEvents(seeds: readonly WebhookEventSeed[]): Promise<void> {
  const endpointCount = Math.max(0, ...seeds.map((seed) => seed.deliveries?.length ?? 0));
  const endpoints = await prisma.webhookEndpoint.createManyAndReturn({
    data: Array.from({ length: endpointCount }, (_, index) => ({
      url: `https://receiver.test/${index}`,
      events: ["connection.created"],
      secret: "sealed",
    })),
  });
  for (const [position, seed] of seeds.entries()) {
    const createdAt = new Date(Date.now() - seed.age * DAY_MS);
    const event = await prisma.webhookEvent.create({
      data: {
        txid: BigInt(position + 1),
        type: "connection.created",
        connectionId: "00000000-0000-4000-8000-000000000000",
        integration: "github",
        externalId: String(seed.age),
        status: "active",
        createdAt,
        ...(seed.inOutbox ? { outbox: { create: {} } } : {}),
      },
    });
    for (const [index, endpoint] of endpoints.entries()) {
      const status = seed.deliveries?.[index];
      if (!status) break;
      await prisma.webhookDelivery.create({
        data: {
          endpointId: endpoint.id,
          eventId: event.id,
          status,
          attempts: 1,
          giveUpAt: new Date(createdAt.getTime() + 3 * DAY_MS),
          attemptLog: { create: { attempt: 0, startedAt: createdAt, durationMs: 5, outcome: "x" } },
        },
      });
    }
  }
}

async function remainingWebhookAges(): Promise<number[]> {
  const rows = await prisma.webhookEvent.findMany({ select: { externalId: true } });
  return rows.map((row) => Number(row.externalId)).sort((a, b) => a - b);
}

describe("pruneWebhookEvents", () => {
  it("removes events older than the retention with their deliveries and attempts", async () => {
    await insertWebhookEvents([
      { age: 45, deliveries: ["succeeded", "failed"] },
      { age: 31, deliveries: ["succeeded"] },
      { age: 29, deliveries: ["succeeded", "succeeded"] },
      { age: 0, deliveries: ["pending"] },
    ]);
    const result = await pruneWebhookEvents(prisma, { retentionDays: 30 });
    expect(result).toEqual({ removed: 2, batches: 2, stopped: "done" });
    expect(await remainingWebhookAges()).toEqual([0, 29]);
    // Every delivery and attempt left belongs to an event left: nothing orphaned, nothing extra.
    expect(await prisma.webhookDelivery.count()).toBe(3);
    expect(await prisma.webhookAttempt.count()).toBe(3);
  });

  it("keeps an old event while a delivery is pending or it is still in the outbox", async () => {
    // A 1-day retention is allowed, below the 3-day retry window: pending ones must stay.
    await insertWebhookEvents([
      { age: 2.5, deliveries: ["succeeded", "pending"] },
      { age: 2.4, inOutbox: true },
      { age: 2, deliveries: ["failed"] },
      { age: 0.5, deliveries: ["succeeded"] },
    ]);
    expect(await pruneWebhookEvents(prisma, { retentionDays: 1 })).toEqual({
      removed: 1,
      batches: 2,
      stopped: "done",
    });
    expect(await remainingWebhookAges()).toEqual([0.5, 2.4, 2.5]);
    expect(await prisma.webhookDelivery.count({ where: { status: "pending" } })).toBe(1);
    expect(await prisma.webhookOutbox.count()).toBe(1);
  });

  it("reaches prunable events behind more kept ones than a batch holds", async () => {
    const kept = Array.from({ length: 5 }, () => ({ age: 2.5, deliveries: ["pending" as const] }));
    await insertWebhookEvents([...kept, { age: 2, deliveries: ["succeeded"] }, { age: 0 }]);
    expect(await pruneWebhookEvents(prisma, { retentionDays: 1, batchSize: 2 })).toEqual({
      removed: 1,
      batches: 2,
      stopped: "done",
    });
    expect(await remainingWebhookAges()).toEqual([0, 2.5, 2.5, 2.5, 2.5, 2.5]);
  });

  it("works off a backlog in batches, at most maxBatches per call", async () => {
    await insertWebhookEvents([60, 59, 58, 57, 56, 3].map((age) => ({ age })));
    const options = { retentionDays: 7, batchSize: 2, maxBatches: 2 };
    expect(await pruneWebhookEvents(prisma, options)).toEqual({
      removed: 4,
      batches: 2,
      stopped: "limit",
    });
    expect(await remainingWebhookAges()).toEqual([3, 56]);
    expect(await pruneWebhookEvents(prisma, options)).toEqual({
      removed: 1,
      batches: 2,
      stopped: "done",
    });
    expect(await remainingWebhookAges()).toEqual([3]);
  });

  it("stops at once while another prune holds the lock", async () => {
    await insertWebhookEvents([{ age: 40 }]);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock(hashtext('prune_webhook_events'))");
      expect(await pruneWebhookEvents(prisma, { retentionDays: 30 })).toEqual({
        removed: 0,
        batches: 0,
        stopped: "busy",
      });
      // Each table has its own lock: the connection events prune is not held up by this one.
      expect((await pruneConnectionEvents(prisma, { retentionDays: 30 })).stopped).toBe("done");
      await holder.query("COMMIT");
    } finally {
      await holder.end();
    }
    expect(await remainingWebhookAges()).toEqual([40]);
  });
});

describe("pruneConnectSessions", () => {
  it("removes sessions expired for more than a day and keeps the others", async () => {
    const integration = await prisma.integration.create({
      data: { key: "github", provider: "github", clientId: "id", clientSecret: "sealed" },
    });
    const expiredHoursAgo = [-0.2, 1, 23, 25, 72];
    await prisma.connectSession.createMany({
      data: expiredHoursAgo.map((hours, index) => ({
        id: randomUUID(),
        stateHash: `state-${index}`,
        integrationId: integration.id,
        externalId: String(hours),
        returnUrl: "https://app.test/done",
        redirectUri: "https://evergreen.test/oauth/callback",
        scopes: [],
        expiresAt: new Date(Date.now() - hours * 3_600_000),
      })),
    });
    expect(await pruneConnectSessions(prisma, { batchSize: 1 })).toEqual({
      removed: 2,
      batches: 3,
      stopped: "done",
    });
    const left = await prisma.connectSession.findMany({ select: { externalId: true } });
    expect(left.map((session) => Number(session.externalId)).sort((a, b) => a - b)).toEqual([
      -0.2, 1, 23,
    ]);
  });
});
