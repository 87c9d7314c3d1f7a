// Test harness: a migrated database, a private webhook queue on Redis, real HTTP receivers
// on 127.0.0.1, wired into DeliveryDeps the way the worker wires them.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import { createDatabase, type PrismaClient } from "@evergreen/db";
import { createTestDatabase, type TestDatabase } from "@evergreen/db/testing";
import { EgressClient } from "@evergreen/egress";
import { createLogger, createMetrics, type Metrics } from "@evergreen/observability";
import type { Queue } from "bullmq";
import { Redis } from "ioredis";
import type { DeliveryDeps, DeliverySettings } from "./deliver-webhook";
import { WebhookEndpointStore } from "./endpoint-store";
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from "./event-types";
import { createWebhookQueue, type DeliveryJobPayload } from "./jobs";
import { type DispatcherOptions, OutboxDispatcher } from "./outbox-dispatcher";
import { recordWebhookEvent, type WebhookEventInput } from "./record-event";

/** Each harness has a queue prefix of its own, so suites share a Redis database. */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export interface ReceivedWebhook {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** How a receiver answers its `n`th request (0 first). */
export type ReceiverScript = (
  n: number,
  request: ReceivedWebhook,
) => { status: number; headers?: Record<string, string>; body?: string };

export interface Receiver {
  readonly url: string;
  readonly received: readonly ReceivedWebhook[];
  /** Resolves once `count` requests have arrived. */
  receivedCount(count: number): Promise<void>;
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1 that answers 204 unless `script` says otherwise. */
export async function startReceiver(
  script: ReceiverScript = () => ({ status: 204 }),
): Promise<Receiver> {
  const received: ReceivedWebhook[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const webhook = { headers: request.headers, body: Buffer.concat(chunks).toString("utf8") };
      const answer = script(received.length, webhook);
      received.push(webhook);
      response.writeHead(answer.status, answer.headers).end(answer.body);
      for (const waiter of waiters.filter((w) => received.length >= w.count)) waiter.resolve();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    receivedCount: (count) =>
      received.length >= count
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ count, resolve })),
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export interface WebhookHarness {
  readonly db: TestDatabase;
  readonly prisma: PrismaClient;
  readonly redis: Redis;
  readonly keyRing: KeyRing;
  readonly queue: Queue<DeliveryJobPayload>;
  /** Redis prefix of this harness's queue. */
  readonly prefix: string;
  readonly metrics: Metrics;
  readonly endpoints: WebhookEndpointStore;
  readonly deps: DeliveryDeps;
  dispatcher(options?: Partial<DispatcherOptions>): OutboxDispatcher;
  /** Commits one event the way a connection change does, and returns its id. */
  recordEvent(input?: Partial<WebhookEventInput>): Promise<string>;
  /** An endpoint for `url`, subscribed to `events` (all by default), and its secret. */
  addEndpoint(
    url: string,
    events?: readonly WebhookEventType[],
  ): Promise<{ id: string; secret: string }>;
  close(): Promise<void>;
}

export async function createWebhookHarness(
  settings: Partial<DeliverySettings> = {},
): Promise<WebhookHarness> {
  const db = await createTestDatabase();
  const database = createDatabase({ url: db.url, poolSize: 5 });
  const { prisma } = database;
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const keyRing = KeyRing.fromSpec(generateEncryptionKey("test"));
  const prefix = `{test-webhooks-${randomBytes(4).toString("hex")}}`;
  const queue = createWebhookQueue(redis, prefix);
  const metrics = createMetrics({ version: "test" });
  const log = createLogger({ name: "test", level: "silent" });
  const endpoints = new WebhookEndpointStore(prisma, keyRing);
  const egress = new EgressClient({ allowLoopback: true });
  const deps: DeliveryDeps = {
    prisma,
    endpoints,
    egress,
    queue,
    metrics,
    log,
    settings: { timeoutMs: 2_000, allowInsecureUrls: true, ...settings },
  };
  return {
    db,
    prisma,
    redis,
    keyRing,
    queue,
    prefix,
    metrics,
    endpoints,
    deps,
    dispatcher: (options = {}) => new OutboxDispatcher({ prisma, queue, log, ...options }),
    async recordEvent(input = {}) {
      const connectionId = input.connectionId ?? crypto.randomUUID();
      await prisma.$transaction((tx) =>
        recordWebhookEvent(tx, {
          type: "connection.needs_reauth",
          connectionId,
          integration: "mock",
          externalId: "user-42",
          status: "needs_reauth",
          errorCode: "invalid_grant",
          errorMessage: "the grant was revoked",
          ...input,
        }),
      );
      const event = await prisma.webhookEvent.findFirstOrThrow({
        where: { connectionId },
        orderBy: { txid: "desc" },
      });
      return event.id;
    },
    async addEndpoint(url, events) {
      const { endpoint, secret } = await endpoints.create({
        url,
        events: events ?? WEBHOOK_EVENT_TYPES,
      });
      return { id: endpoint.id, secret };
    },
    async close() {
      await queue.obliterate({ force: true });
      await queue.close();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
      egress.close();
      await database.close();
      await db.drop();
    },
  };
}
