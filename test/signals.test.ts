import { once } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { enqueueRefresh, openRefreshToken, QUEUE_PREFIX } from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { recordWebhookEvent, WebhookEndpointStore } from "@evergreen/webhooks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { type AppProcess, listeningPort, startCommand } from "./support/app-process";

// A stop must reach the process that drains, however ops start it: the compose file's
// command, `npm run start:*` (systemd units, container commands), turbo under `npm start`.
// Each test signals one PID, never its process group, as Docker and systemd's main-process
// stop do. The processes use the production queue and lock prefixes: Redis database 11.
const REDIS_URL = redisDatabaseUrl(11);
const API_KEY = "signals-test-key-0123456789";

const compose = parse(await readFile(new URL("../docker-compose.yml", import.meta.url), "utf8"), {
  merge: true,
}) as { services: Record<string, { command?: string[] }> };

function composeCommand(service: string): string[] {
  const command = compose.services[service]?.command;
  if (!command) throw new Error(`docker-compose.yml: no command for ${service}`);
  return command;
}

let h: RefreshHarness;
const started: AppProcess[] = [];

beforeEach(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL, prefix: QUEUE_PREFIX });
  await h.redis.flushdb();
});
afterEach(async () => {
  // A failed test may leave node running under a dead npm: kill both by pid.
  for (const app of started.splice(0)) {
    const nodePid = app.logs.find((line) => typeof line.pid === "number")?.pid as number;
    for (const pid of [app.child.pid, nodePid]) {
      if (pid === undefined) continue;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await app.exited;
  }
  await h.close();
});

function launch(argv: readonly string[], env: Record<string, string> = {}): AppProcess {
  const app = startCommand(argv, {
    NODE_ENV: "test",
    DATABASE_URL: h.db.url,
    REDIS_URL,
    ENCRYPTION_KEYS: h.encryptionKeys,
    API_KEYS: API_KEY,
    PORT: "0",
    METRICS_PORT: "0",
    ALLOW_INSECURE_TOKEN_URLS: "true",
    LOG_LEVEL: "info",
    npm_config_update_notifier: "false",
    ...env,
  });
  started.push(app);
  return app;
}

/** The pid the app logs (pino's `pid`): the node process itself, whatever started it. */
async function nodePid(app: AppProcess): Promise<number> {
  return (await app.waitForLog((line) => line.msg === "starting")).pid as number;
}

async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // "pid (comm) state ppid ...": comm may hold spaces, so count from its closing parenthesis.
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** Every connection refreshed exactly once, the provider's live token stored, none reused. */
async function expectStoredOnce(added: Awaited<ReturnType<RefreshHarness["addConnection"]>>[]) {
  expect(h.provider.reuseCount).toBe(0);
  for (const { connection, grant } of added) {
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    const live = h.provider.grant(grant.grantId);
    expect(row).toMatchObject({ status: "active", refreshCount: 1 });
    expect(live).toMatchObject({ revoked: false, refreshes: 1 });
    expect(openRefreshToken(h.keyRing, connection.id, row.refreshToken ?? "")).toBe(
      live?.refreshToken,
    );
  }
}

/** Six rotating refreshes in flight (the provider answers after 3 s), then `signal()`. */
async function stopWorkerMidRefresh(worker: AppProcess, signal: () => unknown) {
  await worker.waitForLog((line) => line.msg === "ops server listening");
  h.provider.latencyMs = 3_000;
  const added = await Promise.all(
    Array.from({ length: 6 }, () => h.addConnection({ rotate: true })),
  );
  for (const { connection } of added) {
    await enqueueRefresh(h.queues, { connectionId: connection.id, version: 0 }, new Date());
  }
  await vi.waitFor(() => expect(h.provider.requests).toBe(6), { timeout: 15_000, interval: 20 });
  await signal();
  return added;
}

/** Every process under `pid`, children first seen first, from /proc's parent links. */
async function descendantsOf(pid: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = await parentOf(Number(entry)).catch(() => undefined);
    if (parent !== undefined)
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const next = children.get(queue.shift() as number) ?? [];
    found.push(...next);
    queue.push(...next);
  }
  return found;
}

async function commandOf(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replaceAll("\0", " ");
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("a stop signal to npm start", () => {
  it("stops turbo and all three apps, none left running without it", async () => {
    // Set to their defaults, so the apps behave as ever, but set: each must reach every app.
    // turbo's strict mode had dropped every variable its list left out (AUDIT_LOG went to
    // stdout, PUBLIC_URL was the loopback one).
    const passed = {
      PUBLIC_URL: "http://127.0.0.1:3000",
      AUDIT_LOG: "stdout",
      REFRESH_QUEUE_SHARDS: "1",
      EVENT_RETENTION_DAYS: "30",
      REAUTH_SOON_DAYS: "7",
    };
    const npm = launch(["npm", "start"], passed);
    const pid = npm.child.pid as number;
    const apps = async () => {
      const found: number[] = [];
      for (const child of await descendantsOf(pid)) {
        if ((await commandOf(child)).includes("src/main.ts")) found.push(child);
      }
      return found;
    };
    await vi.waitFor(async () => expect(await apps()).toHaveLength(3), {
      timeout: 40_000,
      interval: 250,
    });
    const running = [...(await descendantsOf(pid))];
    try {
      for (const app of await apps()) {
        const environ = (await readFile(`/proc/${app}/environ`, "utf8")).split("\0");
        for (const [name, value] of Object.entries(passed)) {
          expect(environ, `${name} in ${await commandOf(app)}`).toContain(`${name}=${value}`);
        }
      }
      npm.child.kill("SIGTERM");
      await npm.exited;
      await vi.waitFor(() => expect(running.filter(alive)).toEqual([]), {
        timeout: 20_000,
        interval: 250,
      });
    } finally {
      for (const leftover of running.filter(alive)) process.kill(leftover, "SIGKILL");
    }
  }, 90_000);
});

describe("a stop signal to one PID drains the worker", () => {
  it("under the compose file's worker command", async () => {
    const worker = launch(composeCommand("worker"));
    // The command is node itself: the signalled PID is the one that drains.
    expect(await nodePid(worker)).toBe(worker.child.pid);
    const added = await stopWorkerMidRefresh(worker, () => worker.child.kill("SIGTERM"));
    expect(await worker.exited).toBe(0);
    expect(worker.logs.at(-1)).toMatchObject({ msg: "stopped", clean: true });
    await expectStoredOnce(added);
  });

  it("under `npm run start:worker`, signalling npm alone", async () => {
    const npm = launch(["npm", "run", "start:worker"]);
    // npm -> node, with no shell or second npm between that would swallow the signal.
    expect(await parentOf(await nodePid(npm))).toBe(npm.child.pid);
    const added = await stopWorkerMidRefresh(npm, () => npm.child.kill("SIGTERM"));
    expect(await npm.exited).toBe(0);
    expect(npm.logs.at(-1)).toMatchObject({ msg: "stopped", clean: true });
    await expectStoredOnce(added);
  });

  it("when the signal comes twice, as turbo and npm both relay a Ctrl-C", async () => {
    const worker = launch(composeCommand("worker"));
    const added = await stopWorkerMidRefresh(worker, async () => {
      worker.child.kill("SIGINT");
      // Two signals sent at once merge into one pending signal; the relayed one comes
      // tens of milliseconds later, once the first is being handled.
      await worker.waitForLog((line) => line.msg === "shutting down");
      worker.child.kill("SIGINT");
    });
    expect(await worker.exited).toBe(0);
    expect(worker.logs.map((line) => line.msg)).toContain("already shutting down");
    await expectStoredOnce(added);
  });
});

describe("a stop signal to the worker with a webhook delivery in flight", () => {
  it("waits for the receiver's answer and records it, refreshes in flight too", async () => {
    // The receiver answers after 14 s, within the 15 s delivery timeout: longer than the
    // refreshes' drain plus the 10 s a shutdown step gets by default.
    const requests: string[] = [];
    const receiver = createServer((request, response) => {
      requests.push(String(request.headers["webhook-id"]));
      request.resume();
      setTimeout(() => response.writeHead(204).end(), 14_000);
    });
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    try {
      const worker = launch(composeCommand("worker"));
      const { connection } = await h.addConnection();
      await new WebhookEndpointStore(h.prisma, h.keyRing).create({
        url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`,
        events: ["connection.error"],
      });
      const added = await stopWorkerMidRefresh(worker, async () => {
        await h.prisma.$transaction((tx) =>
          recordWebhookEvent(tx, {
            type: "connection.error",
            connectionId: connection.id,
            integration: "mock",
            externalId: connection.externalId,
            status: "error",
          }),
        );
        await vi.waitFor(() => expect(requests).toHaveLength(1), { timeout: 15_000, interval: 20 });
        worker.child.kill("SIGTERM");
      });
      expect(await worker.exited).toBe(0);
      expect(worker.logs.at(-1)).toMatchObject({ msg: "stopped", clean: true });
      await expectStoredOnce(added);
      const delivery = await h.prisma.webhookDelivery.findFirstOrThrow();
      expect(delivery).toMatchObject({ status: "succeeded", attempts: 1 });
    } finally {
      receiver.closeAllConnections();
      receiver.close();
    }
  });
});

describe("a stop signal to `npm run start:api`", () => {
  it("lets an on-demand refresh in flight answer its caller and store the token", async () => {
    // The provider answers after 11 s: longer than the 10 s a shutdown step used to get.
    const npm = launch(["npm", "run", "start:api"], { REFRESH_TIMEOUT_MS: "15000" });
    expect(await parentOf(await nodePid(npm))).toBe(npm.child.pid);
    const base = `http://127.0.0.1:${await listeningPort(npm)}`;
    const get = (id: string) =>
      fetch(`${base}/v1/connections/${id}/token`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
    h.provider.latencyMs = 11_000;
    const due = await h.addConnection({ rotate: true, expiresInSeconds: 5 });
    // Expired: a token still valid is answered as it is while draining.
    const later = await h.addConnection({ rotate: true, expiresInSeconds: -10 });

    const answer = get(due.connection.id);
    await vi.waitFor(() => expect(h.provider.requests).toBe(1), { timeout: 15_000, interval: 20 });
    npm.child.kill("SIGTERM");
    await npm.waitForLog((line) => line.msg === "shutting down");

    // While draining, no new provider call starts: the caller is told to retry elsewhere.
    const refused = await get(later.connection.id);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: "unavailable" });
    // And readiness says so, for the load balancer to send it nothing new.
    const readiness = await fetch(`${base}/readyz`);
    expect(readiness.status).toBe(503);
    expect(await readiness.json()).toEqual({ status: "not_ready", reason: "stopping" });

    const response = await answer;
    expect(response.status).toBe(200);
    expect(((await response.json()) as { accessToken: string }).accessToken).toBe(
      h.provider.grant(due.grant.grantId)?.accessToken,
    );
    expect(await npm.exited).toBe(0);
    expect(npm.logs.at(-1)).toMatchObject({ msg: "stopped", clean: true });
    expect(h.provider.requests).toBe(1);
    await expectStoredOnce([due]);
  });
});
