import { createLogger } from "@evergreen/observability";
import {
  createWebhookHarness,
  type Receiver,
  startReceiver,
  TEST_REDIS_URL,
  type WebhookHarness,
} from "@evergreen/webhooks/testing";
import type { Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startWebhookWorker } from "./webhook-worker";

const log = createLogger({ name: "test", level: "silent" });
let h: WebhookHarness;
let target: Receiver;
const workers: Worker[] = [];
const connections: Redis[] = [];

beforeEach(async () => {
  h = await createWebhookHarness();
  target = await startReceiver();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close()));
  await Promise.all(connections.splice(0).map((c) => c.quit()));
  await target.close();
  await h.close();
});

/** A worker process's webhook half: its own consumer connection and dispatcher. */
function startWorker() {
  const connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  connections.push(connection);
  const worker = startWebhookWorker(h.deps, { connection, prefix: h.prefix, log, concurrency: 5 });
  workers.push(worker);
  return { worker, dispatcher: h.dispatcher({ pollMs: 20, batchSize: 7 }) };
}

describe("webhook worker", () => {
  it("two workers deliver every event exactly once", async () => {
    await h.addEndpoint(target.url);
    const ids = await Promise.all(Array.from({ length: 40 }, () => h.recordEvent()));
    const one = startWorker();
    const two = startWorker();
    one.dispatcher.start();
    two.dispatcher.start();
    await target.receivedCount(40);
    // Everything settled: no job left that could send one more.
    await expect
      .poll(() => h.queue.getJobCounts("wait", "active", "delayed"), { timeout: 10_000 })
      .toEqual({ wait: 0, active: 0, delayed: 0 });
    await Promise.all([one.dispatcher.stop(), two.dispatcher.stop()]);
    const received = target.received.map((r) => String(r.headers["webhook-id"]));
    expect(received).toHaveLength(40);
    expect(new Set(received)).toEqual(new Set(ids));
    expect(await h.prisma.webhookDelivery.count({ where: { status: "succeeded" } })).toBe(40);
  });
});
