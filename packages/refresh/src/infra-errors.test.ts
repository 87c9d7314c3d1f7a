import { createDatabase, createPrismaClient } from "@evergreen/db";
import { createRedis } from "@evergreen/redis";
import { Cluster } from "ioredis";
import { describe, expect, it } from "vitest";
import { infraDependency, isInfraOutage } from "./infra-errors";
import { TEST_REDIS_URL } from "./testing";

/** An address nothing listens on. */
const NOWHERE_PG = "postgresql://postgres@127.0.0.1:1/nowhere";
const TEST_PG = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

/** What `work` rejects with. */
async function failure(work: () => Promise<unknown>): Promise<unknown> {
  return work().then(
    () => expect.unreachable("it succeeded"),
    (error: unknown) => error,
  );
}

describe("infraDependency", () => {
  it("names PostgreSQL for what pg and Prisma reject with", async () => {
    const refused = createDatabase({ url: NOWHERE_PG });
    const reachable = createDatabase({ url: TEST_PG });
    const prisma = createPrismaClient({ url: NOWHERE_PG });
    try {
      expect(infraDependency(await failure(() => refused.pool.query("SELECT 1")))).toBe("postgres");
      expect(infraDependency(await failure(() => reachable.pool.query("SELECT 1/0")))).toBe(
        "postgres",
      );
      expect(infraDependency(await failure(() => prisma.$queryRaw`SELECT 1`))).toBe("postgres");
    } finally {
      await Promise.all([refused.close(), reachable.close(), prisma.$disconnect()]);
    }
  });

  it("names Redis for what ioredis rejects with", async () => {
    const redis = createRedis(TEST_REDIS_URL, "producer");
    expect(
      infraDependency(await failure(() => redis.eval("return redis.error_reply('no')", 0))),
    ).toBe("redis");
    await redis.quit();
    expect(infraDependency(await failure(() => redis.get("key")))).toBe("redis");

    // A producer connection gives up on a command after one reconnection attempt.
    const unreachable = createRedis("redis://127.0.0.1:1", "producer");
    unreachable.on("error", () => {});
    try {
      expect(infraDependency(await failure(() => unreachable.get("key")))).toBe("redis");
    } finally {
      unreachable.disconnect();
    }
  });

  it("names nothing for errors that are no outage", () => {
    expect(infraDependency(new Error("unsupported state or unable to authenticate data"))).toBe(
      undefined,
    );
    expect(infraDependency(new TypeError("x is undefined"))).toBe(undefined);
    expect(infraDependency("a string")).toBe(undefined);
  });
});

describe("isInfraOutage", () => {
  it("is true for PostgreSQL unreachable and false for a query's own error", async () => {
    const refused = createDatabase({ url: NOWHERE_PG });
    const reachable = createDatabase({ url: TEST_PG });
    const prisma = createPrismaClient({ url: NOWHERE_PG });
    try {
      expect(isInfraOutage(await failure(() => refused.pool.query("SELECT 1")))).toBe(true);
      expect(isInfraOutage(await failure(() => prisma.$queryRaw`SELECT 1`))).toBe(true);
      expect(isInfraOutage(await failure(() => reachable.pool.query("SELECT 1/0")))).toBe(false);
    } finally {
      await Promise.all([refused.close(), reachable.close(), prisma.$disconnect()]);
    }
  });

  it("is true for a database that does not exist (dropped under a running app)", async () => {
    const missing = new URL(TEST_PG);
    missing.pathname = "/evergreen_no_such_database";
    const { prisma, pool, close } = createDatabase({ url: missing.toString() });
    try {
      expect(isInfraOutage(await failure(() => pool.query("SELECT 1")))).toBe(true);
      expect(isInfraOutage(await failure(() => prisma.$queryRaw`SELECT 1`))).toBe(true);
      expect(isInfraOutage(await failure(() => prisma.integration.findMany()))).toBe(true);
    } finally {
      await close();
    }
  });

  it("is true for a transaction that cannot start while every connection is busy", async () => {
    const { prisma, pool, close } = createDatabase({ url: TEST_PG, poolSize: 1 });
    const busy = await pool.connect();
    try {
      const waited = await failure(() =>
        prisma.$transaction(async (tx) => tx.$queryRaw`SELECT 1`, { maxWait: 100 }),
      );
      expect(waited).toMatchObject({ code: "P2028" });
      expect(isInfraOutage(waited)).toBe(true);
    } finally {
      busy.release();
      await close();
    }
  });

  it("is true for Redis closed, unreachable or failing over, false for a script's error", async () => {
    const redis = createRedis(TEST_REDIS_URL, "producer");
    const reply = (message: string) =>
      failure(() => redis.eval(`return redis.error_reply('${message}')`, 0));
    expect(
      isInfraOutage(await reply("READONLY You cannot write against a read only replica.")),
    ).toBe(true);
    expect(isInfraOutage(await reply("CLUSTERDOWN The cluster is down"))).toBe(true);
    expect(isInfraOutage(await reply("ERR no such key"))).toBe(false);
    await redis.quit();
    expect(isInfraOutage(await failure(() => redis.get("key")))).toBe(true);

    // A Redis that takes longer than the command timeout (here, a script that spins).
    const impatient = createRedis(TEST_REDIS_URL, "producer", "infra-errors-test", {
      commandTimeoutMs: 50,
    });
    try {
      // 200 ms: long enough to time out, short enough not to stall the tests sharing Redis.
      const spin =
        "local function ms() local t = redis.call('time') return t[1] * 1000 + t[2] / 1000 end " +
        "local start = ms() repeat until ms() - start >= 200";
      const slow = await failure(() => impatient.eval(spin, 0));
      expect(isInfraOutage(slow)).toBe(true);
      expect(infraDependency(slow)).toBe("redis");
    } finally {
      impatient.disconnect();
    }

    const unreachable = createRedis("redis://127.0.0.1:1", "producer");
    unreachable.on("error", () => {});
    // A cluster client that finds none of its nodes: what the api meets with every node down.
    const cluster = new Cluster([{ host: "127.0.0.1", port: 1 }], {
      clusterRetryStrategy: () => null,
    });
    cluster.on("error", () => {});
    try {
      expect(isInfraOutage(await failure(() => unreachable.get("key")))).toBe(true);
      expect(isInfraOutage(await failure(() => cluster.get("key")))).toBe(true);
    } finally {
      unreachable.disconnect();
      cluster.disconnect();
    }
  });

  it("is false for errors that are no outage", () => {
    expect(isInfraOutage(new TypeError("x is undefined"))).toBe(false);
    expect(isInfraOutage("ECONNREFUSED")).toBe(false);
  });
});
