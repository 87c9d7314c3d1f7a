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
  it("removes connection events older than EVENT_RETENTION_DAYS and keeps newer ones", async () => {
    await prisma.$executeRaw`
      INSERT INTO connection_events ("connectionId", "integrationId", type, message, "createdAt")
      SELECT gen_random_uuid(), gen_random_uuid(), 'refreshed', age::text,
             now() - make_interval(secs => age * 86400)
        FROM unnest(${[10, 3, 1.5, 0]}::float8[]) AS a(age)`;

    scheduler = startApp("scheduler", {
      NODE_ENV: "test",
      DATABASE_URL: db.url,
      REDIS_URL,
      METRICS_PORT: "0",
      EVENT_RETENTION_DAYS: "2",
    });
    const pruned = await scheduler.waitForLog((line) => line.msg === "connection events pruned");
    expect(pruned).toMatchObject({ removed: 2, stopped: "done" });
    const left = await prisma.connectionEvent.findMany({ select: { message: true } });
    expect(left.map((event) => event.message).sort()).toEqual(["0", "1.5"]);
  });
});
