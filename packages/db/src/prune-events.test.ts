import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createPrismaClient } from "./client";
import type { PrismaClient } from "./generated/prisma/client";
import { pruneConnectionEvents } from "./prune-events";
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
  await prisma.$executeRawUnsafe("TRUNCATE connection_events");
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
