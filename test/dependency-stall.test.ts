import { createDatabase } from "@evergreen/db";
import { closeRedis, createRedis } from "@evergreen/redis";
import { QUEUE_PREFIX } from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppProcess, listeningPort, startApp } from "./support/app-process";
import { type StallingProxy, startStallingProxy } from "./support/stalling-proxy";

// An api whose Redis or PostgreSQL stops answering without closing anything (a frozen VM,
// dropped packets): each behind a proxy that holds every byte while stalled. This file owns
// Redis database 8 (the api locks under the production prefix).
const REDIS_URL = redisDatabaseUrl(8);
const API_KEY = "stall-test-key-0123456789";
/**
 * Far above the api's own limits (5 s for a Redis command, 10 s for a PostgreSQL statement):
 * a hang, not a slow answer.
 */
const HANG_MS = 40_000;

let h: RefreshHarness;
let redis: StallingProxy;
let postgres: StallingProxy;
let api: AppProcess;
let base: string;

/** `url` with its port replaced by the proxy's. */
function through(url: string, proxy: StallingProxy): string {
  const proxied = new URL(url);
  proxied.port = String(proxy.port);
  return proxied.toString();
}

beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL, prefix: QUEUE_PREFIX });
  await h.redis.flushdb();
  const redisUrl = new URL(REDIS_URL);
  redis = await startStallingProxy({
    host: redisUrl.hostname,
    port: Number(redisUrl.port || 6379),
  });
  const databaseUrl = new URL(h.db.url);
  postgres = await startStallingProxy({
    host: databaseUrl.hostname,
    port: Number(databaseUrl.port || 5432),
  });
  api = startApp("api", {
    NODE_ENV: "test",
    DATABASE_URL: through(h.db.url, postgres),
    REDIS_URL: through(REDIS_URL, redis),
    ENCRYPTION_KEYS: h.encryptionKeys,
    API_KEYS: API_KEY,
    PORT: "0",
    ALLOW_INSECURE_TOKEN_URLS: "true",
    LOG_LEVEL: "info",
  });
  base = `http://127.0.0.1:${await listeningPort(api)}`;
});

afterAll(async () => {
  redis?.resume();
  postgres?.resume();
  api?.child.kill("SIGTERM");
  await api?.exited;
  await redis?.close();
  await postgres?.close();
  await h?.close();
});

function call(method: "GET" | "POST", path: string, body?: unknown): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${API_KEY}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(HANG_MS),
  });
}

describe("an api whose Redis hangs", () => {
  it("answers 503 while Redis hangs, and refreshes again once it answers", async () => {
    const { connection } = await h.addConnection();
    expect((await call("POST", `/v1/connections/${connection.id}/refresh`)).status).toBe(200);

    redis.stall();
    const stalled = await call("POST", `/v1/connections/${connection.id}/refresh`);
    expect(stalled.status).toBe(503);
    expect(stalled.headers.get("retry-after")).not.toBeNull();
    expect(await stalled.json()).toMatchObject({ error: "unavailable" });
    expect((await call("GET", "/readyz")).status).toBe(503);
    // A second refresh while the first one's lock release still waits on Redis: answered
    // the same way (it once waited out that release's time limit before its own).
    expect((await call("POST", `/v1/connections/${connection.id}/refresh`)).status).toBe(503);

    redis.resume();
    // The lock whose SET timed out on our side ran once Redis answered; the api released it
    // after it rather than leave it held for a lease (30 s) by no one.
    await expect.poll(() => h.deps.lock.remainingMs(connection.id), { timeout: 10_000 }).toBe(0);
    await expect
      .poll(async () => (await call("POST", `/v1/connections/${connection.id}/refresh`)).status, {
        timeout: 20_000,
        interval: 500,
      })
      .toBe(200);
  });
});

describe("closing a connection to a Redis that hangs", () => {
  it("disconnects instead of waiting for the QUIT's answer, and says so", async () => {
    const client = createRedis(through(REDIS_URL, redis), "consumer", "stall-close");
    try {
      await client.ping();
      redis.stall();
      // A plain quit() waits for as long as Redis hangs (this test's time limit).
      await expect(closeRedis(client)).rejects.toThrow(/did not answer QUIT/);
      await expect.poll(() => client.status).toBe("end");
    } finally {
      redis.resume();
      client.disconnect();
    }
  });

  it("quits as usual when Redis answers", async () => {
    const client = createRedis(through(REDIS_URL, redis), "consumer", "stall-close");
    await client.ping();
    await closeRedis(client);
    await expect.poll(() => client.status).toBe("end");
  });
});

describe("an api whose PostgreSQL hangs", () => {
  it("answers 503 while PostgreSQL hangs, and answers again once it does", async () => {
    const { connection } = await h.addConnection();
    const view = `/v1/connections/${connection.id}`;
    expect((await call("GET", view)).status).toBe(200);

    postgres.stall();
    for (const stalled of await Promise.all([
      call("GET", view),
      call("POST", `${view}/refresh`),
      call("POST", "/v1/connections", {
        integration: "nope",
        externalId: "user-1",
        accessToken: "at",
      }),
    ])) {
      expect(stalled.status).toBe(503);
      expect(stalled.headers.get("retry-after")).not.toBeNull();
      expect(await stalled.json()).toMatchObject({ error: "unavailable" });
    }
    expect((await call("GET", "/readyz")).status).toBe(503);

    postgres.resume();
    await expect
      .poll(async () => (await call("POST", `${view}/refresh`)).status, {
        timeout: 20_000,
        interval: 500,
      })
      .toBe(200);
  });
});

describe("a transaction whose COMMIT goes unanswered", () => {
  it("is rolled back with its connection, and the pool's next statement is not part of it", async () => {
    // One connection: the statement after the failed COMMIT gets the same pool slot, which
    // node-postgres's own query timeout handed back still inside the transaction.
    const database = createDatabase({
      url: through(h.db.url, postgres),
      poolSize: 1,
      timeoutMs: 1_000,
    });
    const run = Math.random().toString(36).slice(2, 8);
    const key = (name: string) => `stall-${run}-${name}`;
    const integration = (name: string) => ({
      key: key(name),
      provider: "oauth2",
      clientId: "id",
      clientSecret: "ev1.k.x",
    });
    try {
      await expect(
        database.prisma.$transaction(async (tx) => {
          await tx.integration.create({ data: integration("in-transaction") });
          postgres.stall();
        }),
      ).rejects.toThrow();
      postgres.resume();
      await database.prisma.integration.create({ data: integration("after") });

      const stored = await h.prisma.integration.findMany({
        where: { key: { in: [key("in-transaction"), key("after")] } },
        select: { key: true },
      });
      expect(stored.map(({ key }) => key)).toEqual([key("after")]);
    } finally {
      postgres.resume();
      await database.close();
    }
  });
});
