import { QUEUE_PREFIX, refreshJobId } from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AppProcess, startApp } from "./support/app-process";

// The scheduler uses the production queue prefix: this file owns Redis database 6.
const REDIS_URL = redisDatabaseUrl(6);

let h: RefreshHarness;
let scheduler: AppProcess | undefined;
beforeEach(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL, prefix: QUEUE_PREFIX });
  await h.redis.flushdb();
});
afterEach(async () => {
  scheduler?.child.kill("SIGTERM");
  await scheduler?.exited;
  await h.close();
});

describe("scheduler process", () => {
  it("rebuilds every job within one interval after Redis loses all keys", async () => {
    const rows = await Promise.all(
      Array.from({ length: 12 }, async () => {
        const { connection } = await h.addConnection();
        return h.prisma.connection.update({
          where: { id: connection.id },
          data: { nextRefreshAt: new Date(Date.now() + 3_600_000) },
        });
      }),
    );
    const expected = rows.map((row) => refreshJobId({ connectionId: row.id, version: 0 })).sort();

    scheduler = startApp("scheduler", {
      NODE_ENV: "test",
      DATABASE_URL: h.db.url,
      REDIS_URL,
      METRICS_PORT: "0",
      RECONCILE_INTERVAL_SECONDS: "1",
    });
    const port = (await scheduler.waitForLog((line) => line.msg === "ops server listening")).port;
    await scheduler.waitForLog((line) => line.msg === "queue reconciled" && line.enqueued === 12);
    const jobIds = async () =>
      (await h.queue.getJobs(["delayed"])).map((job) => job.id ?? "").sort();
    expect(await jobIds()).toEqual(expected);

    // FLUSHALL, limited to this file's database so parallel test files keep their keys.
    const before = scheduler.logs.length;
    await h.redis.flushdb();
    expect(await jobIds()).toEqual([]);
    await scheduler.waitForLog(
      (line) =>
        (scheduler?.logs.indexOf(line) ?? -1) >= before &&
        line.msg === "queue reconciled" &&
        line.enqueued === 12,
    );
    expect(await jobIds()).toEqual(expected);

    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(
      /evergreen_connections\{[^}]*provider="oauth2"[^}]*status="active"[^}]*\} 12/,
    );
    expect(metrics).toMatch(/evergreen_queue_jobs\{[^}]*state="delayed"[^}]*\} 12/);
  });
});
