import { QUEUE_PREFIX } from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppProcess, listeningPort, startApp } from "./support/app-process";

// The api processes use the production lock prefix, so this file owns a Redis database.
const REDIS_URL = redisDatabaseUrl(5);
const API_KEY = "cross-process-key-0123456789";

let h: RefreshHarness;
const apis: { process: AppProcess; base: string }[] = [];

beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL, prefix: QUEUE_PREFIX, latencyMs: 200 });
  await h.redis.flushdb();
  for (let n = 0; n < 2; n += 1) {
    const api = startApp("api", {
      NODE_ENV: "test",
      DATABASE_URL: h.db.url,
      REDIS_URL,
      ENCRYPTION_KEYS: h.encryptionKeys,
      API_KEYS: API_KEY,
      PORT: "0",
      ALLOW_INSECURE_TOKEN_URLS: "true",
      LOG_LEVEL: "info",
    });
    apis.push({ process: api, base: `http://127.0.0.1:${await listeningPort(api)}` });
  }
});
afterAll(async () => {
  for (const { process } of apis) {
    process.child.kill("SIGTERM");
    await process.exited;
  }
  await h.close();
});

describe("tokens on demand across api processes", () => {
  it("20 callers spread over two api processes cause exactly one provider call", async () => {
    const { connection, grant } = await h.addConnection({ rotate: true, expiresInSeconds: 5 });
    const answers = await Promise.all(
      Array.from({ length: 20 }, async (_, n) => {
        const api = apis[n % apis.length];
        const response = await fetch(`${api?.base}/v1/connections/${connection.id}/token`, {
          headers: { authorization: `Bearer ${API_KEY}` },
        });
        return {
          status: response.status,
          body: (await response.json()) as { accessToken: string },
        };
      }),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
    expect(h.provider.reuseCount).toBe(0);
    expect(new Set(answers.map((a) => a.body.accessToken))).toEqual(
      new Set([h.provider.grant(grant.grantId)?.accessToken]),
    );
  });
});
