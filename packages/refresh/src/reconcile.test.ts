import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { refreshJobId } from "./jobs";
import { reconcileQueue } from "./reconcile";
import { createRefreshHarness, type RefreshHarness } from "./testing";

let h: RefreshHarness;
beforeEach(async () => {
  h = await createRefreshHarness();
});
afterEach(() => h.close());

/** Connections due at staggered times, as refreshes would have left them. */
async function dueConnections(count: number) {
  const base = Date.now() + 60_000;
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const { connection } = await h.addConnection();
      return h.prisma.connection.update({
        where: { id: connection.id },
        data: { nextRefreshAt: new Date(base + index * 1000), version: index % 3 },
      });
    }),
  );
}

async function queuedJobIds(): Promise<string[]> {
  const jobs = await h.queue.getJobs(["delayed", "wait"]);
  return jobs.map((job) => job.id ?? "").sort();
}

describe("reconcileQueue", () => {
  it("rebuilds every pending job after Redis lost them, timed to nextRefreshAt", async () => {
    const rows = await dueConnections(25);
    const { connection: stopped } = await h.addConnection();
    await h.prisma.connection.update({
      where: { id: stopped.id },
      data: { status: "needs_reauth", nextRefreshAt: new Date() },
    });
    await h.queue.obliterate({ force: true }); // what FLUSHALL does to our keys

    const now = new Date();
    const result = await reconcileQueue(h.prisma, h.queue, h.redis, {
      batchSize: 7,
      now: () => now,
    });
    expect(result).toEqual({ scanned: 25, enqueued: 25 });
    expect(await queuedJobIds()).toEqual(
      rows.map((row) => refreshJobId({ connectionId: row.id, version: row.version })).sort(),
    );
    const sample = rows[3];
    if (!sample) throw new Error("no rows");
    const job = await h.queue.getJob(
      refreshJobId({ connectionId: sample.id, version: sample.version }),
    );
    expect(job?.opts.delay).toBe((sample.nextRefreshAt?.getTime() ?? 0) - now.getTime());
  });

  it("adds nothing when the queue already matches, even with two schedulers at once", async () => {
    await dueConnections(30);
    const [first, second] = await Promise.all([
      reconcileQueue(h.prisma, h.queue, h.redis, { batchSize: 8 }),
      reconcileQueue(h.prisma, h.queue, h.redis, { batchSize: 5 }),
    ]);
    expect(first?.scanned).toBe(30);
    expect(second?.scanned).toBe(30);
    expect((await queuedJobIds()).length).toBe(30);
    expect(await reconcileQueue(h.prisma, h.queue, h.redis)).toEqual({ scanned: 30, enqueued: 0 });
  });
});
