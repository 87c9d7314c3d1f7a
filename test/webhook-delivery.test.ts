import { once } from "node:events";
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { verifyWebhook } from "@evergreen/client";
import { QUEUE_PREFIX } from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { recordWebhookEvent, WebhookEndpointStore } from "@evergreen/webhooks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AppProcess, startApp } from "./support/app-process";

// Issue 10: "a crash between commit and delivery delivers later", with real worker
// processes and SIGKILL (no shutdown hook runs). The workers use the production queue
// prefixes: this file owns Redis database 2.
const REDIS_URL = redisDatabaseUrl(2);

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly response: ServerResponse;
}

/** A receiver on 127.0.0.1 whose requests the test answers (or never answers) itself. */
class Receiver {
  readonly requests: Received[] = [];
  readonly #server: Server;
  #waiters: (() => void)[] = [];

  constructor() {
    this.#server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        this.requests.push({
          headers: request.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          response,
        });
        for (const wake of this.#waiters.splice(0)) wake();
      });
    });
  }

  async listen(): Promise<string> {
    this.#server.listen(0, "127.0.0.1");
    await once(this.#server, "listening");
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hooks`;
  }

  /** Resolves with request number `index` (0-based) once its body has arrived. */
  async request(index: number): Promise<Received> {
    for (;;) {
      const received = this.requests[index];
      if (received) return received;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  close(): void {
    this.#server.closeAllConnections();
    this.#server.close();
  }
}

let h: RefreshHarness;
let receiver: Receiver;
const started: AppProcess[] = [];

beforeEach(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL, prefix: QUEUE_PREFIX });
  await h.redis.flushdb();
  receiver = new Receiver();
});
afterEach(async () => {
  for (const app of started.splice(0)) {
    app.child.kill("SIGKILL");
    await app.exited;
  }
  receiver.close();
  await h.close();
});

function startWorker(): AppProcess {
  const worker = startApp("worker", {
    NODE_ENV: "test",
    DATABASE_URL: h.db.url,
    REDIS_URL,
    ENCRYPTION_KEYS: h.encryptionKeys,
    METRICS_PORT: "0",
    // The receiver is http on loopback.
    ALLOW_INSECURE_TOKEN_URLS: "true",
    LOG_LEVEL: "info",
  });
  started.push(worker);
  return worker;
}

async function kill(worker: AppProcess): Promise<void> {
  worker.child.kill("SIGKILL");
  expect(await worker.exited).toBeNull();
}

/**
 * An endpoint for `connection.error`, then one transaction that marks a connection
 * errored and records the event: the state change the delivery must survive a crash of.
 */
async function commitEvent(): Promise<{ secret: string; eventId: string }> {
  const { secret } = await new WebhookEndpointStore(h.prisma, h.keyRing).create({
    url: await receiver.listen(),
    events: ["connection.error"],
  });
  const { connection } = await h.addConnection();
  await h.prisma.$transaction(async (tx) => {
    await tx.connection.update({ where: { id: connection.id }, data: { status: "error" } });
    await recordWebhookEvent(tx, {
      type: "connection.error",
      connectionId: connection.id,
      integration: "mock",
      externalId: connection.externalId,
      status: "error",
      errorCode: "provider_error",
    });
  });
  const event = await h.prisma.webhookEvent.findFirstOrThrow();
  return { secret, eventId: event.id };
}

/**
 * The delivery that `received` is, once answered: signed for the endpoint, the event,
 * recorded once.
 */
async function expectDelivered(received: Received, secret: string, eventId: string) {
  received.response.writeHead(200).end();
  // The worker records the answer after the receiver has sent it: wait for the row.
  await expect
    .poll(async () => (await h.prisma.webhookDelivery.findFirstOrThrow()).status, {
      timeout: 10_000,
      interval: 50,
    })
    .toBe("succeeded");
  expect(received.headers["webhook-id"]).toBe(eventId);
  expect(verifyWebhook(received.headers, received.body, secret)).toMatchObject({
    type: "connection.error",
    data: { status: "error", error: { code: "provider_error" } },
  });
  const delivery = await h.prisma.webhookDelivery.findFirstOrThrow({
    include: { attemptLog: true },
  });
  expect(delivery).toMatchObject({
    eventId,
    status: "succeeded",
    attempts: 1,
    lastStatusCode: 200,
  });
  // Only the attempt that got an answer is recorded: the killed one never came back.
  expect(delivery.attemptLog).toHaveLength(1);
}

describe("a worker SIGKILLed between commit and delivery", () => {
  // Worker B sends again once A's claim on the attempt (2 × the 15 s delivery timeout)
  // and BullMQ's job lock (as long) have lapsed and B's stalled-job check, every 30 s and
  // shared by the queue's workers, has seen the job active at one check and lockless at
  // the next: about 60 s after A started. None of these is configurable.
  it("while its receiver holds the request open: another worker sends it again, same webhook-id", {
    timeout: 120_000,
  }, async () => {
    const { secret, eventId } = await commitEvent();
    const a = startWorker();
    const first = await receiver.request(0);
    expect(first.headers["webhook-id"]).toBe(eventId);
    await kill(a);

    startWorker();
    const second = await receiver.request(1);
    await expectDelivered(second, secret, eventId);
    expect(receiver.requests).toHaveLength(2);
  });

  it("before its dispatcher took the event from the outbox: another worker delivers it", async () => {
    const { secret, eventId } = await commitEvent();
    // "starting" is A's first line, before it opens PostgreSQL or Redis.
    const a = startWorker();
    await a.waitForLog((line) => line.msg === "starting");
    await kill(a);
    expect(await h.prisma.webhookOutbox.count()).toBe(1);
    expect(await h.prisma.webhookDelivery.count()).toBe(0);

    startWorker();
    const received = await receiver.request(0);
    await expectDelivered(received, secret, eventId);
    expect(receiver.requests).toHaveLength(1);
  });
});
