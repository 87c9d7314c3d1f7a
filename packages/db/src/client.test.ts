import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createDatabase, createPrismaClient } from "./client";
import type { PrismaClient } from "./generated/prisma/client";
import { createTestDatabase, type TestDatabase } from "./testing";

describe("createPrismaClient on a migrated database", () => {
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

  it("stores a connection with defaults and keeps externalId unique per integration", async () => {
    const integration = await prisma.integration.create({
      data: { key: "gmail", provider: "google", clientId: "id", clientSecret: "ev1.k.x" },
    });
    const connection = await prisma.connection.create({
      data: { integrationId: integration.id, externalId: "user-1", accessToken: "ev1.k.y" },
    });
    expect(connection).toMatchObject({
      status: "active",
      version: 0,
      refreshCount: 0,
      metadata: {},
    });
    await expect(
      prisma.connection.create({
        data: { integrationId: integration.id, externalId: "user-1", accessToken: "ev1.k.z" },
      }),
    ).rejects.toThrow(/Unique constraint/);
  });

  it("keeps the connection event log append-only", async () => {
    const event = await prisma.connectionEvent.create({
      data: {
        connectionId: "00000000-0000-4000-8000-000000000001",
        integrationId: "00000000-0000-4000-8000-000000000002",
        type: "created",
      },
    });
    await expect(
      prisma.connectionEvent.update({ where: { id: event.id }, data: { message: "rewritten" } }),
    ).rejects.toThrow(/append-only/);
    await expect(prisma.connectionEvent.delete({ where: { id: event.id } })).rejects.toThrow(
      /append-only/,
    );
    expect(await prisma.connectionEvent.count()).toBe(1);
  });
});

describe("createDatabase", () => {
  it("outlives the server ending an idle connection", async () => {
    const db = await createTestDatabase();
    const { pool, close } = createDatabase({ url: db.url, poolSize: 2 });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const { rows } = await pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      await admin.query("SELECT pg_terminate_backend($1)", [rows[0]?.pid]);
      // The pool drops the dead client; its error event reaches no listener of ours (an
      // unhandled one would fail this run).
      await vi.waitFor(() => expect(pool.totalCount).toBe(0));
      expect((await pool.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await admin.end();
      await close();
      await db.drop();
    }
  });
});

describe("createDatabase with a query timeout", () => {
  it("never hands out a connection whose transaction a timeout left open", async () => {
    const db = await createTestDatabase();
    // One connection, so the write below gets the one the timed-out transaction used.
    const { prisma, pool, close } = createDatabase({
      url: db.url,
      poolSize: 1,
      queryTimeoutMs: 200,
    });
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await pool.query("CREATE TABLE counter (n int)");
      await pool.query("INSERT INTO counter VALUES (0)");
      // A statement outlives the timeout; the ROLLBACK that Prisma then sends waits behind it
      // and times out too, unsent.
      await expect(
        prisma.$transaction(async (tx) => {
          await tx.$executeRaw`UPDATE counter SET n = 1`;
          await tx.$queryRaw`SELECT pg_sleep(1)`;
        }),
      ).rejects.toThrow();
      // Once the server is done with the sleep: had the connection gone back to the pool
      // inside that transaction, this write would run in it, answer success, never commit.
      const sleeping = `SELECT count(*)::int AS n FROM pg_stat_activity
                         WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%'`;
      await vi.waitFor(async () => expect((await other.query(sleeping)).rows).toEqual([{ n: 0 }]));
      await pool.query("UPDATE counter SET n = 2");
      expect((await other.query("SELECT n FROM counter")).rows).toEqual([{ n: 2 }]);
    } finally {
      await other.end();
      await close();
      await db.drop();
    }
  });
});
