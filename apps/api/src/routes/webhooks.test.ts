import { createDatabase } from "@evergreen/db";
import { EgressPolicy } from "@evergreen/egress";
import { createLogger } from "@evergreen/observability";
import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import {
  createWebhookQueue,
  deliveryJobId,
  OutboxDispatcher,
  WebhookEndpointStore,
} from "@evergreen/webhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH, revocationTestQueue, testMetrics, testServer } from "../test-server";
import { TokenService } from "../token-service";
import { registerConnectionRoutes } from "./connections";
import { registerEventRoutes } from "./events";
import { registerWebhookRoutes } from "./webhooks";

let h: RefreshHarness;
let webhookQueue: ReturnType<typeof createWebhookQueue>;

beforeAll(async () => {
  h = await createRefreshHarness();
  webhookQueue = createWebhookQueue(h.redis, `${h.prefix}:webhooks`);
  await h.addConnection({ integrationKey: "mock" }); // the "mock" integration
});
afterAll(async () => {
  await webhookQueue.obliterate({ force: true });
  await webhookQueue.close();
  await h.close();
});

const server = () =>
  testServer({
    routes: [
      (app) =>
        registerWebhookRoutes(app, {
          prisma: h.prisma,
          endpoints: new WebhookEndpointStore(h.prisma, h.keyRing),
          queue: webhookQueue,
          allowInsecureUrls: "loopback",
          egressPolicy: new EgressPolicy({ allowLoopback: true }),
        }),
      (app) => registerEventRoutes(app, { prisma: h.prisma }),
      (app) =>
        registerConnectionRoutes(app, {
          prisma: h.prisma,
          refresh: h.deps,
          tokens: new TokenService(h.deps, h.prisma, testMetrics().http),
          revocations: revocationTestQueue(app, h),
        }),
    ],
  });

async function call(method: "GET" | "POST" | "DELETE", url: string, payload?: object) {
  const app = await server();
  return app.inject({ method, url, headers: AUTH, ...(payload ? { payload } : {}) });
}

const RECEIVER = "https://hooks.example.com/evergreen";

describe("webhook endpoints", () => {
  it("create answers the secret once; list and read never show it", async () => {
    const created = await call("POST", "/v1/webhooks", {
      url: RECEIVER,
      events: ["connection.needs_reauth", "connection.error"],
    });
    expect(created.statusCode).toBe(201);
    const body = created.json();
    expect(body).toMatchObject({
      url: RECEIVER,
      events: ["connection.needs_reauth", "connection.error"],
      disabledAt: null,
    });
    expect(body.secret).toMatch(/^whsec_/);
    const row = await h.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: body.id } });
    expect(row.secret).not.toContain(body.secret.slice(6));

    const list = await call("GET", "/v1/webhooks");
    expect(list.body).not.toContain(body.secret);
    expect(list.json().data.map((e: { id: string }) => e.id)).toContain(body.id);
    const read = await call("GET", `/v1/webhooks/${body.id.toUpperCase()}`);
    expect(read.statusCode).toBe(200);
    expect(read.json()).not.toHaveProperty("secret");

    const rotated = await call("POST", `/v1/webhooks/${body.id}/rotate-secret`);
    expect(rotated.statusCode).toBe(200);
    expect(rotated.json().secret).toMatch(/^whsec_/);
    expect(rotated.json().secret).not.toBe(body.secret);

    expect((await call("DELETE", `/v1/webhooks/${body.id}`)).statusCode).toBe(204);
    expect((await call("GET", `/v1/webhooks/${body.id}`)).statusCode).toBe(404);
    expect((await call("DELETE", `/v1/webhooks/${body.id}`)).statusCode).toBe(404);
  });

  it.each([
    [{ url: "http://hooks.example.com/x", events: ["connection.created"] }, "url: must use https"],
    [
      { url: "https://10.0.0.1/x", events: ["connection.created"] },
      "url: the host is, or resolves to, a loopback",
    ],
    [
      { url: "https://user:pw@hooks.example.com/", events: ["connection.created"] },
      "url: must not contain credentials",
    ],
    [{ url: RECEIVER, events: ["connection.exploded"] }, "events.0:"],
    [{ url: RECEIVER, events: [] }, "events:"],
    [{ url: RECEIVER, events: ["connection.created"], secret: "mine" }, "secret: unknown field"],
  ])("refuses %j with 400", async (payload, message) => {
    const response = await call("POST", "/v1/webhooks", payload);
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toContain(message);
  });

  it("refuses a deliveries cursor it did not make, whatever its date, with 400", async () => {
    const endpoint = (
      await call("POST", "/v1/webhooks", { url: RECEIVER, events: ["connection.created"] })
    ).json();
    const id = crypto.randomUUID();
    // Dates JavaScript accepts but PostgreSQL's timestamp does not (before 4713 BC, year 0).
    for (const at of ["-100000-01-01T00:00:00.000Z", "0000-01-01T00:00:00.000Z", "bogus"]) {
      const cursor = Buffer.from(`${at}|${id}`).toString("base64url");
      const response = await call("GET", `/v1/webhooks/${endpoint.id}/deliveries?cursor=${cursor}`);
      expect(response.statusCode).toBe(400);
    }
  });

  it("404 for unknown ids of any shape", async () => {
    expect((await call("GET", "/v1/webhooks/nope")).statusCode).toBe(404);
    expect((await call("GET", `/v1/webhooks/${crypto.randomUUID()}/deliveries`)).statusCode).toBe(
      404,
    );
  });
});

describe("deliveries", () => {
  it("lists attempts and outcomes, and a retry sends the delivery again", async () => {
    const endpoint = (
      await call("POST", "/v1/webhooks", {
        url: "http://127.0.0.1:9/unreachable",
        events: ["connection.created"],
      })
    ).json();
    await call("POST", "/v1/connections", {
      integration: "mock",
      externalId: "delivery-user",
      accessToken: "access",
      refreshToken: "refresh",
    });
    const dispatcher = new OutboxDispatcher({
      prisma: h.prisma,
      queue: webhookQueue,
      log: createLogger({ name: "test", level: "silent" }),
    });
    await dispatcher.dispatchOnce();
    const delivery = await h.prisma.webhookDelivery.findFirstOrThrow({
      where: { endpointId: endpoint.id },
    });
    await h.prisma.webhookDelivery.update({
      where: { id: delivery.id },
      data: {
        status: "failed",
        attempts: 1,
        lastOutcome: "unreachable",
        attemptLog: {
          create: {
            attempt: 0,
            startedAt: new Date(),
            durationMs: 3,
            statusCode: null,
            outcome: "unreachable",
          },
        },
      },
    });

    const listed = await call("GET", `/v1/webhooks/${endpoint.id}/deliveries`);
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toMatchObject({
      data: [
        {
          id: delivery.id,
          eventType: "connection.created",
          status: "failed",
          attempts: [{ attempt: 0, statusCode: null, outcome: "unreachable" }],
        },
      ],
      nextCursor: null,
    });

    const retried = await call(
      "POST",
      `/v1/webhooks/${endpoint.id}/deliveries/${delivery.id}/retry`,
    );
    expect(retried.statusCode).toBe(202);
    expect(retried.json()).toMatchObject({ status: "pending" });
    const job = await webhookQueue.getJob(deliveryJobId({ deliveryId: delivery.id, attempt: 1 }));
    expect(job?.data).toEqual({ deliveryId: delivery.id, attempt: 1 });
    expect(
      (await call("POST", `/v1/webhooks/${endpoint.id}/deliveries/${crypto.randomUUID()}/retry`))
        .statusCode,
    ).toBe(404);
  });
});

describe("GET /v1/events", () => {
  it("pages the feed with filters, from registration to deletion, never a token", async () => {
    const created = (
      await call("POST", "/v1/connections", {
        integration: "mock",
        externalId: "feed-user",
        accessToken: "feed-access-token",
        refreshToken: "feed-refresh-token",
      })
    ).json();
    expect((await call("DELETE", `/v1/connections/${created.id}`)).statusCode).toBe(204);

    // The feed waits for every write transaction of the PostgreSQL server to end (other
    // test runs share it): poll until the deletion shows, then all before it shows too.
    await expect
      .poll(async () => (await call("GET", `/v1/events?connection=${created.id}`)).json().data)
      .toHaveLength(2);
    const mine = await call("GET", `/v1/events?connection=${created.id}`);
    expect(mine.statusCode).toBe(200);
    expect(mine.body).not.toContain("feed-access-token");
    expect(mine.body).not.toContain("feed-refresh-token");
    expect(mine.json().data).toEqual([
      {
        id: expect.any(String),
        type: "connection.created",
        timestamp: expect.any(String),
        data: {
          connectionId: created.id,
          integration: "mock",
          externalId: "feed-user",
          status: "active",
          error: null,
        },
      },
      {
        id: expect.any(String),
        type: "connection.deleted",
        timestamp: expect.any(String),
        data: {
          connectionId: created.id,
          integration: "mock",
          externalId: "feed-user",
          status: "deleted",
          error: null,
        },
      },
    ]);

    const deleted = await call("GET", "/v1/events?type=connection.deleted");
    expect(deleted.json().data.map((e: { type: string }) => e.type)).toEqual([
      "connection.deleted",
    ]);

    // Page by page, one at a time, the whole feed comes back in order, each event once.
    const all = (await call("GET", "/v1/events?limit=200"))
      .json()
      .data.map((e: { id: string }) => e.id);
    const paged: string[] = [];
    let after: string | null = null;
    for (;;) {
      const response = await call("GET", `/v1/events?limit=1${after ? `&after=${after}` : ""}`);
      const page: { data: { id: string }[]; nextCursor: string | null; hasMore: boolean } =
        response.json();
      paged.push(...page.data.map((e) => e.id));
      after = page.nextCursor;
      if (!page.hasMore) break;
    }
    expect(paged).toEqual(all);
    // At the end, the cursor stays where it was: poll with it for what comes next.
    const tail = (await call("GET", `/v1/events?after=${after}`)).json();
    expect(tail).toEqual({ data: [], nextCursor: after, hasMore: false });
  });

  it("holds back events committed after a transaction still open, so no cursor skips one", async () => {
    const database = createDatabase({ url: h.db.url, poolSize: 2 });
    const slow = await database.pool.connect();
    try {
      const before = (await call("GET", "/v1/events?limit=200")).json().nextCursor;
      const insert = `INSERT INTO webhook_events (type, "connectionId", integration, "externalId", status)
                      VALUES ('connection.created', gen_random_uuid(), 'mock', $1, 'active')`;
      await slow.query("BEGIN");
      await slow.query(insert, ["slow"]);
      await database.pool.query(insert, ["fast"]); // commits first, with a later txid
      // Neither shows while the first is open: "fast" committed, but behind a transaction
      // that may still add an event before it.
      const names = async () =>
        // No cursor yet when this test runs alone: the feed starts empty.
        (await call("GET", before ? `/v1/events?after=${before}` : "/v1/events"))
          .json()
          .data.map((e: { data: { externalId: string } }) => e.data.externalId)
          .filter((name: string) => name === "slow" || name === "fast");
      expect(await names()).toEqual([]);
      await slow.query("COMMIT");
      await expect.poll(names).toEqual(["slow", "fast"]);
    } finally {
      slow.release();
      await database.close();
    }
  });

  it("refuses a cursor it did not make and unknown types", async () => {
    expect((await call("GET", "/v1/events?after=bogus")).statusCode).toBe(400);
    expect((await call("GET", "/v1/events?type=connection.exploded")).statusCode).toBe(400);
    expect((await call("GET", "/v1/events?connection=nope")).statusCode).toBe(400);
    // The shape of a cursor, with a transaction id past PostgreSQL's bigint: a 400, not a 500.
    const id = crypto.randomUUID();
    const past = Buffer.from(`9999999999999999999.${id}`).toString("base64url");
    expect((await call("GET", `/v1/events?after=${past}`)).statusCode).toBe(400);
  });
});
