import { once } from "node:events";
import { type OpsServer, startOpsServer } from "@evergreen/observability";
import { createRedis } from "@evergreen/redis";
import {
  createRefreshHarness,
  type RefreshHarness,
  TEST_REDIS_URL,
} from "@evergreen/refresh/testing";
import type { Worker } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ConsumerLiveness, consumerLiveness } from "./consumer-liveness";
import { startRefreshWorker } from "./refresh-worker";

let h: RefreshHarness;
let connection: Redis;
let worker: Worker;
/** Stands in for the webhook consumer: liveness only asks a BullMQ Worker whether it runs. */
let webhooks: Worker;
let consumer: ConsumerLiveness;
let ops: OpsServer;

beforeEach(async () => {
  h = await createRefreshHarness();
  connection = createRedis(TEST_REDIS_URL, "consumer");
  worker = startRefreshWorker(h.deps, {
    connection,
    concurrency: 1,
    lockDurationMs: 30_000,
    prefix: h.prefix,
    log: h.deps.log,
    autorun: false,
  });
  webhooks = startRefreshWorker(h.deps, {
    connection,
    concurrency: 1,
    lockDurationMs: 30_000,
    prefix: `${h.prefix}-webhooks`,
    log: h.deps.log,
    autorun: false,
  });
  consumer = consumerLiveness({ refresh: worker, webhook: webhooks }, connection);
  // The worker's ops server, as main.ts wires it.
  ops = await startOpsServer(
    0,
    { registry: h.metrics.registry, checks: {}, liveness: consumer.check },
    "127.0.0.1",
  );
});
afterEach(async () => {
  await ops.close();
  await worker.close();
  await webhooks.close();
  if (connection.status !== "end") await connection.quit();
  await h.close();
});

async function health() {
  const response = await fetch(`http://127.0.0.1:${ops.port}/healthz`);
  return { status: response.status, body: await response.json() };
}

async function running(): Promise<void> {
  void worker.run();
  void webhooks.run();
  await Promise.all([once(worker, "ready"), once(webhooks, "ready")]);
}

describe("consumerLiveness", () => {
  it("is live while the consumer runs, not before it started", async () => {
    expect(await health()).toEqual({
      status: 503,
      body: { status: "not_live", reason: "refresh consumer stopped" },
    });
    await running();
    expect(await health()).toEqual({ status: 200, body: { status: "ok" } });
  });

  it("is not live once the consumer's Redis connection has ended for good", async () => {
    await running();
    const ended = once(connection, "end");
    connection.disconnect();
    await ended;
    expect(await health()).toMatchObject({ status: 503, body: { status: "not_live" } });
  });

  it("is not live once something outside shutdown closed the consumer", async () => {
    await running();
    await worker.close();
    expect(await health()).toEqual({
      status: 503,
      body: { status: "not_live", reason: "refresh consumer closed" },
    });
  });

  // Its run loop ending was only logged: a worker that no longer delivered webhooks kept
  // answering 200, so nothing restarted it.
  it("is not live once the webhook consumer stopped", async () => {
    await running();
    await webhooks.close();
    expect(await health()).toEqual({
      status: 503,
      body: { status: "not_live", reason: "webhook consumer closed" },
    });
  });

  it("closes both consumers on shutdown", async () => {
    await running();
    await consumer.close();
    expect([worker.closing, webhooks.closing]).toEqual([expect.any(Promise), expect.any(Promise)]);
    expect([worker.isRunning(), webhooks.isRunning()]).toEqual([false, false]);
  });

  it("stays live while shutdown drains the consumer", async () => {
    await running();
    const closing = consumer.close();
    expect(await health()).toEqual({ status: 200, body: { status: "ok" } });
    await closing;
    expect(await health()).toEqual({ status: 200, body: { status: "ok" } });
  });
});
