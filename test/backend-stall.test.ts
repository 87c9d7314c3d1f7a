import { QUEUE_PREFIX } from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppProcess, listeningPort, startApp } from "./support/app-process";
import { type StallingProxy, startStallingProxy } from "./support/stalling-proxy";

// An api whose PostgreSQL and Redis stop answering without closing anything (a frozen VM,
// dropped packets): each behind a proxy that holds every byte while stalled. This file owns
// Redis database 8 (the api locks under the production prefix).
const REDIS_URL = redisDatabaseUrl(8);
const API_KEY = "stall-test-key-0123456789";
/** Far above the api's own limits (5 s for Redis, 10 s for a query): a hang, not a slow answer. */
const HANG_MS = 40_000;

let h: RefreshHarness;
let postgres: StallingProxy;
let redis: StallingProxy;
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
  const pgUrl = new URL(h.db.url);
  const redisUrl = new URL(REDIS_URL);
  postgres = await startStallingProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
  redis = await startStallingProxy({
    host: redisUrl.hostname,
    port: Number(redisUrl.port || 6379),
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
  postgres?.resume();
  redis?.resume();
  api?.child.kill("SIGTERM");
  await api?.exited;
  await Promise.all([postgres?.close(), redis?.close()]);
  await h?.close();
});

function call(method: "GET" | "POST", path: string): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}` },
    signal: AbortSignal.timeout(HANG_MS),
  });
}

describe("an api whose backing services hang", () => {
  it("answers 503 while Redis hangs, and refreshes again once it answers", async () => {
    const { connection } = await h.addConnection();
    expect((await call("POST", `/v1/connections/${connection.id}/refresh`)).status).toBe(200);

    redis.stall();
    const stalled = await call("POST", `/v1/connections/${connection.id}/refresh`);
    expect(stalled.status).toBe(503);
    expect(stalled.headers.get("retry-after")).not.toBeNull();
    expect(await stalled.json()).toMatchObject({ error: "unavailable" });
    expect((await call("GET", "/readyz")).status).toBe(503);

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

  it("answers 503 while PostgreSQL hangs, and serves again once it answers", async () => {
    const { connection } = await h.addConnection();
    expect((await call("GET", `/v1/connections/${connection.id}`)).status).toBe(200);

    postgres.stall();
    // Several at once: more than the pool's connections, so some wait for a connection and
    // some for an answer on one; every one of them ends.
    const stalled = await Promise.all(
      Array.from({ length: 12 }, () => call("GET", `/v1/connections/${connection.id}`)),
    );
    expect(stalled.map((response) => response.status)).toEqual(Array(12).fill(503));
    expect(await stalled[0]?.json()).toMatchObject({ error: "unavailable" });

    postgres.resume();
    await expect
      .poll(async () => (await call("GET", `/v1/connections/${connection.id}`)).status, {
        timeout: 20_000,
        interval: 500,
      })
      .toBe(200);
  });
});
