import { once } from "node:events";
import { createServer, type Server } from "node:net";
import { generateEncryptionKey } from "@evergreen/crypto";
import { createTestDatabase, type TestDatabase } from "@evergreen/db/testing";
import { redisDatabaseUrl } from "@evergreen/refresh/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type AppName, type AppProcess, startApp } from "./support/app-process";

// What ops see when something around the apps is wrong: a bad value, a taken port, Redis
// down. Redis database 12 holds nothing: these processes never get to consume a job.
const REDIS_URL = redisDatabaseUrl(12);
const APPS: readonly AppName[] = ["api", "scheduler", "worker"];
const PORT_VARIABLE: Record<AppName, string> = {
  api: "PORT",
  scheduler: "METRICS_PORT",
  worker: "METRICS_PORT",
};

let db: TestDatabase;
const started: AppProcess[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  for (const app of started.splice(0)) {
    app.child.kill("SIGKILL");
    await app.exited;
  }
});
afterAll(() => db.drop());

function start(name: AppName, env: Record<string, string> = {}): AppProcess {
  const app = startApp(name, {
    NODE_ENV: "test",
    DATABASE_URL: db.url,
    REDIS_URL,
    ENCRYPTION_KEYS: generateEncryptionKey("test"),
    API_KEYS: "operations-test-key-0123456789",
    PORT: "0",
    METRICS_PORT: "0",
    ...env,
  });
  started.push(app);
  return app;
}

async function listening(server: Server, host: string): Promise<number> {
  server.listen(0, host);
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("not on TCP");
  return address.port;
}

describe("a bad numeric value", () => {
  it("is named with what is wrong and what was given", async () => {
    const app = start("worker", { WORKER_CONCURRENCY: "abc", METRICS_PORT: "70000" });
    expect(await app.exited).toBe(1);
    expect(app.stderr().trim().split("\n")).toEqual([
      "worker: invalid configuration, not starting:",
      '  - METRICS_PORT: must be a port number (0-65535), got "70000"',
      '  - WORKER_CONCURRENCY: must be a number of jobs (1-10000), got "abc"',
    ]);
  });
});

describe.each(APPS)("%s on a port already in use", (name) => {
  it("ends with one line naming the variable, and exit code 1", async () => {
    const taken = createServer();
    const port = await listening(taken, "0.0.0.0");
    try {
      const app = start(name, { [PORT_VARIABLE[name]]: String(port) });
      expect(await app.exited).toBe(1);
      expect(app.stderr()).toBe("");
      expect(app.otherStdout).toEqual([]);
      const failures = app.logs.filter((line) => line.level === "error" || line.level === "fatal");
      expect(failures).toEqual([
        expect.objectContaining({
          level: "fatal",
          msg: expect.stringMatching(
            name === "api"
              ? `^PORT ${port} is already in use$`
              : // One setting for two apps: the line says each needs its own.
                `^METRICS_PORT ${port} is already in use: each worker and scheduler on a host needs its own`,
          ),
          variable: PORT_VARIABLE[name],
          port,
        }),
      ]);
      expect(app.logs.at(-1)).toBe(failures[0]);
    } finally {
      taken.close();
    }
  });
});

describe("while Redis is unreachable", () => {
  let redisDown: Server;
  let attempts = 0;
  beforeAll(async () => {
    // Accepts and resets every connection, so each reconnect attempt is counted here.
    redisDown = createServer((socket) => {
      attempts += 1;
      socket.resetAndDestroy();
    });
    await listening(redisDown, "127.0.0.1");
  });
  afterAll(() => redisDown.close());

  it("every app writes JSON log lines only, one per error code", async () => {
    const port = (redisDown.address() as { port: number }).port;
    const apps = APPS.map((name) => start(name, { REDIS_URL: `redis://127.0.0.1:${port}` }));
    // Each app's clients retry every 0.2-1.2 s here; each attempt used to print a dump.
    // And each app has met the outage: a slow start (a loaded CI machine) left one app with
    // nothing logged yet when the others' attempts alone reached the count.
    await vi.waitFor(
      () => {
        expect(attempts).toBeGreaterThanOrEqual(20);
        for (const app of apps) {
          expect(app.logs.some((line) => line.msg === "redis client error")).toBe(true);
        }
      },
      { timeout: 30_000, interval: 100 },
    );
    // Killed, not stopped: a worker's stop waits out its drain budget while Redis is down,
    // and past the 30 s window a code may rightly be logged again.
    for (const app of apps) app.child.kill("SIGKILL");
    await Promise.all(apps.map((app) => app.exited));

    for (const app of apps) {
      expect(app.stderr()).toBe("");
      expect(app.otherStdout).toEqual([]);
      const errors = app.logs.filter((line) => line.msg === "redis client error");
      expect(errors.length).toBeGreaterThan(0);
      // Within the 30 s window a code is logged once, whichever client hit it.
      const codes = errors.map((line) => line.code ?? (line.err as { message: string }).message);
      expect(new Set(codes).size).toBe(codes.length);
    }
  });
});
