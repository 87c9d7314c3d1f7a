import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deliverWebhook } from "./deliver-webhook";
import { deliveryJobId } from "./jobs";
import { createWebhookHarness, type Receiver, startReceiver, type WebhookHarness } from "./testing";

let h: WebhookHarness;
let receivers: Receiver[];
beforeEach(async () => {
  h = await createWebhookHarness();
  receivers = [];
});
afterEach(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await h.close();
});

async function receiver(...args: Parameters<typeof startReceiver>) {
  const started = await startReceiver(...args);
  receivers.push(started);
  return started;
}

/** The one delivery of the harness (after a dispatch). */
const delivery = () => h.prisma.webhookDelivery.findFirstOrThrow({ include: { attemptLog: true } });

/** Runs the attempt the delivery's row is at, as the job for it would. */
async function attempt(now?: Date) {
  const row = await delivery();
  return deliverWebhook(now ? { ...h.deps, now: () => now } : h.deps, {
    deliveryId: row.id,
    attempt: row.attempts,
  });
}

describe("deliverWebhook", () => {
  it("posts the event signed (verified by the standardwebhooks library), never a token", async () => {
    const target = await receiver();
    const { secret } = await h.addEndpoint(target.url);
    const connectionId = crypto.randomUUID();
    const eventId = await h.recordEvent({ connectionId });
    expect(await h.dispatcher().dispatchOnce()).toBe(1);
    const queued = await h.queue.getJob(
      deliveryJobId({ deliveryId: (await delivery()).id, attempt: 0 }),
    );
    expect(queued?.data).toEqual({ deliveryId: (await delivery()).id, attempt: 0 });

    expect(await attempt()).toEqual({ kind: "attempted", outcome: "success", nextAttemptAt: null });
    const [request] = target.received;
    if (!request) throw new Error("nothing received");
    const headers = Object.fromEntries(
      Object.entries(request.headers).map(([name, value]) => [name, String(value)]),
    );
    expect(headers["webhook-id"]).toBe(eventId);
    expect(headers["content-type"]).toBe("application/json");
    expect(new Webhook(secret).verify(request.body, headers)).toEqual({
      type: "connection.needs_reauth",
      timestamp: expect.any(String),
      data: {
        connectionId,
        integration: "mock",
        externalId: "user-42",
        status: "needs_reauth",
        error: { code: "invalid_grant", message: "the grant was revoked" },
      },
    });
    expect(await delivery()).toMatchObject({
      status: "succeeded",
      attempts: 1,
      lastStatusCode: 204,
    });
    const counted = await h.metrics.registry.getSingleMetricAsString(
      "evergreen_webhook_deliveries_total",
    );
    expect(counted).toContain('event="connection.needs_reauth",outcome="success"} 1');
    expect(
      await h.metrics.registry.getSingleMetricAsString("evergreen_webhook_delivery_lag_seconds"),
    ).toMatch(/_count\{[^}]*event="connection.needs_reauth"[^}]*\} 1/);
  });

  it("retries a receiver that fails with backoff, same webhook-id, until it recovers", async () => {
    const target = await receiver((n) => ({ status: n < 2 ? 500 : 200 }));
    await h.addEndpoint(target.url);
    await h.recordEvent();
    await h.dispatcher().dispatchOnce();
    const deps = { ...h.deps, random: () => 0 };
    const run = async () => {
      const row = await delivery();
      return deliverWebhook(deps, { deliveryId: row.id, attempt: row.attempts });
    };

    const first = await run();
    expect(first).toMatchObject({ kind: "attempted", outcome: "http_error" });
    const afterFirst = await delivery();
    // 10 s base, jitter at its floor (50 %): 5 s, then 10 s.
    const delay =
      (afterFirst.nextAttemptAt?.getTime() ?? 0) -
      (afterFirst.attemptLog[0]?.startedAt.getTime() ?? 0);
    expect(delay).toBeGreaterThanOrEqual(5_000);
    expect(delay).toBeLessThan(6_000);
    const next = await h.queue.getJob(deliveryJobId({ deliveryId: afterFirst.id, attempt: 1 }));
    expect(await next?.getState()).toBe("delayed");
    expect(afterFirst).toMatchObject({ status: "pending", attempts: 1, lastStatusCode: 500 });

    expect(await run()).toMatchObject({ outcome: "http_error" });
    expect(await run()).toMatchObject({ outcome: "success", nextAttemptAt: null });
    const done = await delivery();
    expect(done).toMatchObject({ status: "succeeded", attempts: 3 });
    expect(done.attemptLog.map((a) => [a.attempt, a.statusCode, a.outcome])).toEqual([
      [0, 500, "http_error"],
      [1, 500, "http_error"],
      [2, 200, "success"],
    ]);
    expect(new Set(target.received.map((r) => r.headers["webhook-id"])).size).toBe(1);
    // A job for an attempt already made does nothing.
    expect(await deliverWebhook(deps, { deliveryId: done.id, attempt: 1 })).toEqual({
      kind: "skipped",
      reason: "not_due",
    });
  });

  it("takes the status as the answer, whatever the size of the body that comes with it", async () => {
    const page = "<html>".padEnd(1024 * 1024, "x");
    const target = await receiver((n) => ({ status: n === 0 ? 500 : 200, body: page }));
    await h.addEndpoint(target.url);
    await h.recordEvent();
    await h.dispatcher().dispatchOnce();

    expect(await attempt()).toMatchObject({ outcome: "http_error" });
    expect(await attempt()).toMatchObject({ outcome: "success", nextAttemptAt: null });
    const done = await delivery();
    expect(done).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(done.attemptLog.map((a) => [a.statusCode, a.outcome])).toEqual([
      [500, "http_error"],
      [200, "success"],
    ]);
  });

  it("honours Retry-After: the next attempt is scheduled no sooner", async () => {
    const target = await receiver(() => ({ status: 503, headers: { "retry-after": "120" } }));
    await h.addEndpoint(target.url);
    await h.recordEvent();
    await h.dispatcher().dispatchOnce();
    const now = new Date();
    const run = await attempt(now);
    expect(run).toMatchObject({
      outcome: "http_error",
      nextAttemptAt: new Date(now.getTime() + 120_000),
    });
    const row = await delivery();
    expect(row.nextAttemptAt).toEqual(new Date(now.getTime() + 120_000));
    const job = await h.queue.getJob(deliveryJobId({ deliveryId: row.id, attempt: 1 }));
    expect(job?.opts.delay).toBe(120_000);
  });

  it("gives up once the retry window has passed", async () => {
    const target = await receiver(() => ({ status: 500 }));
    await h.addEndpoint(target.url);
    await h.recordEvent();
    await h.dispatcher().dispatchOnce();
    const row = await delivery();
    const run = await attempt(new Date(row.giveUpAt.getTime() - 1_000));
    expect(run).toMatchObject({ outcome: "http_error", nextAttemptAt: null });
    expect(await delivery()).toMatchObject({ status: "failed", attempts: 1 });
  });

  it("a 410 disables the endpoint: nothing more is sent to it", async () => {
    const target = await receiver(() => ({ status: 410 }));
    const { id } = await h.addEndpoint(target.url);
    await h.recordEvent();
    await h.dispatcher().dispatchOnce();
    expect(await attempt()).toMatchObject({ outcome: "gone", nextAttemptAt: null });
    expect(await delivery()).toMatchObject({ status: "failed", lastStatusCode: 410 });
    const endpoint = await h.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id } });
    expect(endpoint.disabledAt).not.toBeNull();

    await h.recordEvent();
    expect(await h.dispatcher().dispatchOnce()).toBe(1);
    expect(await h.prisma.webhookDelivery.count()).toBe(1);
    expect(target.received).toHaveLength(1);
  });

  it("an endpoint deleted while its receiver answers ends the delivery quietly", async () => {
    let endpointId = "";
    // Like an app that removes its endpoint as soon as the last event it waited for arrives.
    const server = createServer((request, response) => {
      request.resume();
      h.prisma.webhookEndpoint
        .delete({ where: { id: endpointId } })
        .then(() => response.writeHead(204).end());
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    endpointId = (await h.addEndpoint(`http://127.0.0.1:${port}/hooks`)).id;
    await h.recordEvent();
    await h.dispatcher().dispatchOnce();
    try {
      expect(await attempt()).toEqual({
        kind: "attempted",
        outcome: "success",
        nextAttemptAt: null,
      });
      expect(await h.prisma.webhookDelivery.count()).toBe(0);
      expect(await h.queue.count()).toBe(1); // the first attempt's job only, nothing next
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("after a rotation signs with both secrets; the old one stops after its grace", async () => {
    const target = await receiver();
    const { id, secret: old } = await h.addEndpoint(target.url);
    const rotated = await h.endpoints.rotateSecret(id);
    if (!rotated) throw new Error("not rotated");
    await h.recordEvent();
    await h.dispatcher().dispatchOnce();
    await attempt();
    const [request] = target.received;
    if (!request) throw new Error("nothing received");
    const headers = Object.fromEntries(
      Object.entries(request.headers).map(([name, value]) => [name, String(value)]),
    );
    expect(headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(new Webhook(rotated.secret).verify(request.body, headers)).toBeTruthy();
    expect(new Webhook(old).verify(request.body, headers)).toBeTruthy();

    const endpoint = await h.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id } });
    const later = new Date((endpoint.previousSecretExpiresAt?.getTime() ?? 0) + 1);
    expect(h.endpoints.signingSecrets(endpoint, later)).toEqual([rotated.secret]);
  });

  it("refuses an http URL once insecure URLs are no longer allowed, without sending", async () => {
    const target = await receiver();
    await h.addEndpoint(target.url);
    await h.recordEvent();
    await h.dispatcher().dispatchOnce();
    const row = await delivery();
    const run = await deliverWebhook(
      { ...h.deps, settings: { ...h.deps.settings, allowInsecureUrls: false } },
      { deliveryId: row.id, attempt: 0 },
    );
    expect(run).toMatchObject({ outcome: "refused_by_policy" });
    expect(target.received).toHaveLength(0);
  });
});
