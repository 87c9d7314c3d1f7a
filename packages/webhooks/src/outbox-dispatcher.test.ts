import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deliverWebhook } from "./deliver-webhook";
import { deliveryJobId } from "./jobs";
import { recordWebhookEvent } from "./record-event";
import { createWebhookHarness, type Receiver, startReceiver, type WebhookHarness } from "./testing";

let h: WebhookHarness;
let target: Receiver;
beforeEach(async () => {
  h = await createWebhookHarness();
  target = await startReceiver();
});
afterEach(async () => {
  await target.close();
  await h.close();
});

describe("OutboxDispatcher", () => {
  it("fans an event out once, to the endpoints subscribed to its type", async () => {
    const all = await h.addEndpoint(target.url);
    const other = await h.addEndpoint(target.url, ["connection.deleted"]);
    await h.recordEvent({ type: "connection.created", status: "active" });
    const [first, second] = [h.dispatcher(), h.dispatcher()];
    const taken = await Promise.all([first.dispatchOnce(), second.dispatchOnce()]);
    expect(taken.sort()).toEqual([0, 1]);
    const deliveries = await h.prisma.webhookDelivery.findMany();
    expect(deliveries.map((d) => d.endpointId)).toEqual([all.id]);
    expect(deliveries.map((d) => d.endpointId)).not.toContain(other.id);
    expect(await h.prisma.webhookOutbox.count()).toBe(0);
    expect(await h.queue.getJobCounts("wait", "delayed")).toEqual({ wait: 1, delayed: 0 });
  });

  it("delivers nothing for a change that rolled back", async () => {
    await h.addEndpoint(target.url);
    const connectionId = crypto.randomUUID();
    await expect(
      h.prisma.$transaction(async (tx) => {
        await recordWebhookEvent(tx, {
          type: "connection.created",
          connectionId,
          integration: "mock",
          externalId: "user-1",
          status: "active",
        });
        throw new Error("the change failed");
      }),
    ).rejects.toThrow("the change failed");
    expect(await h.dispatcher().dispatchOnce()).toBe(0);
    expect(await h.prisma.webhookEvent.count()).toBe(0);
    expect(await h.prisma.webhookDelivery.count()).toBe(0);
  });

  it("after a crash between the fan-out's commit and the enqueue, the repair sweep delivers", async () => {
    await h.addEndpoint(target.url);
    const eventId = await h.recordEvent();
    // A worker killed after the fan-out commits, before its jobs reach Redis.
    const killed: typeof h.queue = Object.assign(Object.create(h.queue), {
      addBulk: () => Promise.reject(new Error("killed")),
    });
    await expect(h.dispatcher({ queue: killed }).dispatchOnce()).rejects.toThrow("killed");
    const [stranded] = await h.prisma.webhookDelivery.findMany();
    if (!stranded) throw new Error("no delivery committed");
    expect(
      await h.queue.getJob(deliveryJobId({ deliveryId: stranded.id, attempt: 0 })),
    ).toBeFalsy();

    // Another worker's dispatcher: nothing left in the outbox, but the overdue delivery.
    const other = h.dispatcher();
    expect(await other.dispatchOnce()).toBe(0);
    expect(await other.repair(new Date(Date.now() + 31_000))).toBe(1);
    const job = await h.queue.getJob(deliveryJobId({ deliveryId: stranded.id, attempt: 0 }));
    expect(job?.data).toEqual({ deliveryId: stranded.id, attempt: 0 });
    expect(await other.repair(new Date(Date.now() + 31_000))).toBe(1); // same job id: no second job
    expect(await h.queue.getJobCounts("wait")).toEqual({ wait: 1 });

    await deliverWebhook(h.deps, { deliveryId: stranded.id, attempt: 0 });
    expect(target.received.map((r) => r.headers["webhook-id"])).toEqual([eventId]);
    expect(await other.repair(new Date(Date.now() + 31_000))).toBe(0);
  });

  it("an event committed while no worker ran is delivered by the next dispatcher", async () => {
    await h.addEndpoint(target.url);
    await h.recordEvent();
    await h.recordEvent();
    const dispatcher = h.dispatcher({ pollMs: 10 });
    dispatcher.start();
    // The loop's first pass takes both (one batch); wait for their jobs, not for time.
    await expect.poll(() => h.queue.getJobCounts("wait").then((c) => c.wait)).toBe(2);
    await dispatcher.stop();
    expect(await h.prisma.webhookOutbox.count()).toBe(0);
  });
});
