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

  it("has PostgreSQL cancel a statement it gave up on, so its write never lands later", async () => {
    const db = await createTestDatabase();
    const { prisma, pool, close } = createDatabase({ url: db.url, poolSize: 2, timeoutMs: 500 });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      const integration = await prisma.integration.create({
        data: { key: "locked", provider: "oauth2", clientId: "before", clientSecret: "ev1.k.x" },
      });
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM integrations WHERE id = $1 FOR UPDATE", [integration.id]);
      const blocked = await pool
        .query('UPDATE integrations SET "clientId" = $2 WHERE id = $1', [integration.id, "late"])
        .catch((error: unknown) => error);
      expect(blocked).toMatchObject({ code: "57014" });
      await holder.query("COMMIT");
      const row = await prisma.integration.findUniqueOrThrow({ where: { id: integration.id } });
      expect(row.clientId).toBe("before");
    } finally {
      await holder.end();
      await close();
      await db.drop();
    }
  });
});
