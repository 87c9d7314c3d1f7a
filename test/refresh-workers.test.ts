import { setTimeout as delay } from "node:timers/promises";
import {
  enqueueRefresh,
  openRefreshToken,
  QUEUE_PREFIX,
  refreshConnection,
  refreshJobId,
} from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type AppProcess, startApp } from "./support/app-process";

// Worker processes use the production queue prefix, so this file owns a Redis database
// of its own and empties it first.
const REDIS_URL = redisDatabaseUrl(7);

let h: RefreshHarness;
const workers: AppProcess[] = [];

beforeEach(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL, prefix: QUEUE_PREFIX, timeoutMs: 1_000 });
  await h.redis.flushdb();
});
afterEach(async () => {
  for (const worker of workers.splice(0)) {
    worker.child.kill("SIGKILL");
    await worker.exited;
  }
  await h.close();
});

function startWorker(env: Record<string, string> = {}): AppProcess {
  const worker = startApp("worker", {
    NODE_ENV: "test",
    DATABASE_URL: h.db.url,
    REDIS_URL,
    ENCRYPTION_KEYS: h.encryptionKeys,
    METRICS_PORT: "0",
    ALLOW_INSECURE_TOKEN_URLS: "true",
    // Lock and job lease are 3 × this: 3 s, so takeovers happen within a test.
    REFRESH_TIMEOUT_MS: "1000",
    RETRY_BASE_DELAY_MS: "100",
    WORKER_CONCURRENCY: "10",
    LOG_LEVEL: "info",
    ...env,
  });
  workers.push(worker);
  return worker;
}

const ready = (worker: AppProcess) =>
  worker.waitForLog((line) => line.msg === "ops server listening");

async function due(connectionId: string, version = 0) {
  await enqueueRefresh(h.queues, { connectionId, version }, new Date());
}

/** Makes the job of this connection version due now: promoted if queued, added if not. */
async function dueNow(connectionId: string, version: number) {
  const job = await h.queue.getJob(refreshJobId({ connectionId, version }));
  if (job && (await job.getState()) === "delayed") await job.promote();
  else if (!job) await due(connectionId, version);
}

async function row(id: string) {
  return h.prisma.connection.findUniqueOrThrow({ where: { id } });
}

describe("worker processes", () => {
  it("never reuse a rotated refresh token across three workers and forced refreshes", async () => {
    await Promise.all([startWorker(), startWorker(), startWorker()].map(ready));
    const added = await Promise.all(
      Array.from({ length: 20 }, () => h.addConnection({ rotate: true })),
    );
    // Each round makes every connection's current job due at once, for the three workers to
    // race over, while the api path forces a refresh of the same connections. (Waiting for
    // tokens to come due would take the 30 s minimum interval between refreshes per round.)
    const refreshes = (grantId: string) => h.provider.refreshesByGrant.get(grantId) ?? 0;
    const enough = () => added.every(({ grant }) => refreshes(grant.grantId) >= 8);
    for (let round = 0; round < 30 && !enough(); round += 1) {
      const rows = await Promise.all(added.map(({ connection }) => row(connection.id)));
      await Promise.all(rows.map((current) => dueNow(current.id, current.version)));
      await Promise.all(
        added.map(({ connection }) =>
          refreshConnection(h.deps, { connectionId: connection.id, source: "api" }),
        ),
      );
    }
    expect(enough()).toBe(true);

    for (const worker of workers.splice(0)) {
      worker.child.kill("SIGTERM");
      expect(await worker.exited).toBe(0);
    }

    expect(h.provider.reuseCount).toBe(0);
    for (const { connection, grant } of added) {
      const stored = await row(connection.id);
      const current = h.provider.grant(grant.grantId);
      expect(stored.status).toBe("active");
      expect(current?.revoked).toBe(false);
      // Nothing lost: what the provider considers the live token is what we hold.
      expect(openRefreshToken(h.keyRing, connection.id, stored.refreshToken ?? "")).toBe(
        current?.refreshToken,
      );
    }
  });

  it("never send a refresh token twice when Redis loses every key mid-refresh", async () => {
    // The answers take 800 ms: a time limit well above it, so that a CI machine's hiccup does
    // not turn one into a timeout (a lost answer, which this test is not about).
    const slowAnswers = { REFRESH_TIMEOUT_MS: "3000" };
    await Promise.all([startWorker(slowAnswers), startWorker(slowAnswers)].map(ready));
    const added = await Promise.all(
      Array.from({ length: 10 }, () => h.addConnection({ rotate: true })),
    );
    h.provider.latencyMs = 800;
    await Promise.all(added.map(({ connection }) => due(connection.id)));
    // Every refresh is at the provider (tokens rotated, answers pending) when Redis loses
    // its locks and jobs; the jobs are rebuilt at once, as the scheduler's sweep would.
    await vi.waitFor(() => expect(h.provider.requests).toBe(10), { timeout: 10_000, interval: 10 });
    await h.redis.flushdb();
    await Promise.all(added.map(({ connection }) => due(connection.id)));

    await vi.waitFor(
      async () => {
        for (const { connection } of added) expect((await row(connection.id)).version).toBe(1);
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(h.provider.reuseCount).toBe(0);
    for (const { connection, grant } of added) {
      expect(h.provider.grant(grant.grantId)).toMatchObject({ refreshes: 1, revoked: false });
      const stored = await row(connection.id);
      expect(stored).toMatchObject({ status: "active", refreshCount: 1, lastErrorCode: null });
      expect(openRefreshToken(h.keyRing, connection.id, stored.refreshToken ?? "")).toBe(
        h.provider.grant(grant.grantId)?.refreshToken,
      );
    }
  });

  it("finish a refresh whose worker was killed mid-request", async () => {
    const first = startWorker();
    await ready(first);
    const { connection, grant } = await h.addConnection({ rotate: true });
    h.provider.failNext(1, { hang: true }, { grantId: grant.grantId });
    await due(connection.id);
    await vi.waitFor(() => expect(h.provider.requests).toBe(1), { timeout: 10_000, interval: 20 });
    first.child.kill("SIGKILL");
    await first.exited;

    await ready(startWorker());
    await vi.waitFor(async () => expect((await row(connection.id)).refreshCount).toBe(1), {
      timeout: 20_000,
      interval: 100,
    });
    const stored = await row(connection.id);
    expect(stored).toMatchObject({ status: "active", version: 1 });
    expect(openRefreshToken(h.keyRing, connection.id, stored.refreshToken ?? "")).toBe(
      h.provider.grant(grant.grantId)?.refreshToken,
    );
    expect(h.provider.reuseCount).toBe(0);
  });

  it("keep the lock through a pause shorter than its TTL, so nobody refreshes twice", async () => {
    const paused = startWorker();
    await ready(paused);
    const { connection, grant } = await h.addConnection({ rotate: true });
    h.provider.latencyMs = 800;
    await due(connection.id);
    await vi.waitFor(() => expect(h.provider.requests).toBe(1), { timeout: 10_000, interval: 10 });
    paused.child.kill("SIGSTOP");

    // While paused (1.5 s, under the 3 s lease), a forced refresh finds the lock held.
    const forced = await refreshConnection(h.deps, { connectionId: connection.id, source: "api" });
    expect(forced.kind).toBe("busy");
    await delay(1_500);
    paused.child.kill("SIGCONT");

    await vi.waitFor(async () => expect((await row(connection.id)).refreshCount).toBe(1), {
      timeout: 10_000,
      interval: 50,
    });
    expect(h.provider.refreshesByGrant.get(grant.grantId)).toBe(1);
    expect(h.provider.reuseCount).toBe(0);
  });
});
