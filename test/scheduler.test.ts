import { enqueueRefresh, QUEUE_PREFIX, refreshJobId } from "@evergreen/refresh";
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
const schedulers: AppProcess[] = [];
beforeEach(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL, prefix: QUEUE_PREFIX });
  await h.redis.flushdb();
});
afterEach(async () => {
  for (const scheduler of schedulers.splice(0)) {
    scheduler.child.kill("SIGTERM");
    await scheduler.exited;
  }
  await h.close();
});

function startScheduler(): AppProcess {
  const scheduler = startApp("scheduler", {
    NODE_ENV: "test",
    DATABASE_URL: h.db.url,
    REDIS_URL,
    METRICS_PORT: "0",
    RECONCILE_INTERVAL_SECONDS: "1",
  });
  schedulers.push(scheduler);
  return scheduler;
}

/** Connections due in an hour, as a refresh would have left them (no job queued yet). */
function scheduledConnections(count: number) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const { connection } = await h.addConnection();
      return h.prisma.connection.update({
        where: { id: connection.id },
        data: { nextRefreshAt: new Date(Date.now() + 3_600_000) },
      });
    }),
  );
}

/** Resolves once `scheduler` has finished a sweep that started after this call. */
async function sweepStartingNow(scheduler: AppProcess): Promise<void> {
  const reconciledFrom = (index: number) =>
    scheduler.waitForLog(
      (line) => line.msg === "queue reconciled" && scheduler.logs.indexOf(line) >= index,
    );
  // The sweep in progress may have started earlier; the next one did not, since a
  // scheduler never runs two at once.
  const current = await reconciledFrom(scheduler.logs.length);
  await reconciledFrom(scheduler.logs.indexOf(current) + 1);
}

const delayedJobIds = async () =>
  (await h.queue.getJobs(["delayed"])).map((job) => job.id ?? "").sort();

describe("scheduler process", () => {
  it("rebuilds every job within one interval after Redis loses all keys", async () => {
    const rows = await scheduledConnections(12);
    const expected = rows.map((row) => refreshJobId({ connectionId: row.id, version: 0 })).sort();

    const scheduler = startScheduler();
    const port = (await scheduler.waitForLog((line) => line.msg === "ops server listening")).port;
    await scheduler.waitForLog((line) => line.msg === "queue reconciled" && line.enqueued === 12);
    expect(await delayedJobIds()).toEqual(expected);

    // FLUSHALL, limited to this file's database so parallel test files keep their keys.
    const before = scheduler.logs.length;
    await h.redis.flushdb();
    expect(await delayedJobIds()).toEqual([]);
    await scheduler.waitForLog(
      (line) =>
        scheduler.logs.indexOf(line) >= before &&
        line.msg === "queue reconciled" &&
        line.enqueued === 12,
    );
    expect(await delayedJobIds()).toEqual(expected);

    // The gauges follow the log line within the same sweep: a fetch right after it may still
    // see those of the sweep that met the flushed Redis.
    const metrics = () => fetch(`http://127.0.0.1:${port}/metrics`).then((answer) => answer.text());
    await expect
      .poll(metrics, { timeout: 10_000 })
      .toMatch(/evergreen_queue_jobs\{[^}]*state="delayed"[^}]*\} 12/);
    expect(await metrics()).toMatch(
      /evergreen_connections\{[^}]*provider="oauth2"[^}]*status="active"[^}]*\} 12/,
    );
  });

  it("two schedulers at once keep one job per connection and drop deleted and stopped ones", async () => {
    const rows = await scheduledConnections(150);
    const expected = rows.map((row) => refreshJobId({ connectionId: row.id, version: 0 })).sort();
    // Jobs no connection wants any more: one deleted behind the api's back, one whose
    // grant died.
    const { connection: deleted } = await h.addConnection();
    const { connection: stopped } = await h.addConnection();
    await h.prisma.connection.update({
      where: { id: stopped.id },
      data: { status: "needs_reauth" },
    });
    const inAnHour = new Date(Date.now() + 3_600_000);
    for (const { id } of [deleted, stopped]) {
      await enqueueRefresh(h.queues, { connectionId: id, version: 0 }, inAnHour);
    }
    await h.prisma.connection.delete({ where: { id: deleted.id } });

    const pair = [startScheduler(), startScheduler()];
    // Either one's finished sweep leaves the queue right, and nothing undoes it after.
    await Promise.all(
      pair.map((scheduler) => scheduler.waitForLog((line) => line.msg === "queue reconciled")),
    );
    expect(await delayedJobIds()).toEqual(expected);

    await h.redis.flushdb();
    await Promise.all(pair.map(sweepStartingNow));
    expect(await delayedJobIds()).toEqual(expected);
  });
});
