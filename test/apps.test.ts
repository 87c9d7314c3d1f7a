import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEncryptionKey } from "@evergreen/crypto";
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from "@evergreen/db/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppName, listeningPort, startApp } from "./support/app-process";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

const API_KEY = "test-api-key-0123456789";

function baseEnv(): Record<string, string> {
  return {
    NODE_ENV: "test",
    DATABASE_URL: db.url,
    REDIS_URL,
    ENCRYPTION_KEYS: generateEncryptionKey("test"),
    API_KEYS: API_KEY,
    PORT: "0",
    METRICS_PORT: "0",
  };
}

describe.each<AppName>(["api", "scheduler", "worker"])("%s process", (name) => {
  it("starts, answers health, readiness and metrics, and stops cleanly on SIGTERM", async () => {
    const app = startApp(name, baseEnv());
    const port = await listeningPort(app);
    const base = `http://127.0.0.1:${port}`;

    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(await ready.json()).toEqual({
      status: "ready",
      checks: { database: "ok", redis: "ok" },
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain("# TYPE evergreen_refresh_total counter");
    expect(metrics).toContain("process_cpu_seconds_total");

    app.child.kill("SIGTERM");
    expect(await app.exited).toBe(0);
    expect(app.logs.at(-1)).toMatchObject({ msg: "stopped", clean: true });
  });

  it("logs its configuration without secrets", async () => {
    const env = baseEnv();
    const app = startApp(name, env);
    const starting = await app.waitForLog((line) => line.msg === "starting");
    app.child.kill("SIGINT");
    expect(await app.exited).toBe(0);
    const text = JSON.stringify(app.logs);
    expect(text).not.toContain(env.ENCRYPTION_KEYS?.split(":")[1]);
    expect(text).not.toContain(API_KEY);
    expect(starting.config).toMatchObject({ REDIS_URL });
  });
});

describe("readiness", () => {
  it("answers 503 naming Redis while Redis is unreachable", async () => {
    const app = startApp("worker", { ...baseEnv(), REDIS_URL: "redis://127.0.0.1:1" });
    const port = await listeningPort(app);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({
      status: "not_ready",
      checks: { database: "ok", redis: "unavailable" },
    });
    app.child.kill("SIGTERM");
    await app.exited;
  });
});

describe("audit log", () => {
  const dir = mkdtempSync(join(tmpdir(), "evergreen-audit-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("goes to the AUDIT_LOG file: a token read and a rejected key, never a key", async () => {
    const file = join(dir, "audit.log");
    const env = { ...baseEnv(), AUDIT_LOG: file };
    const app = startApp("api", env);
    const base = `http://127.0.0.1:${await listeningPort(app)}`;
    const id = "00000000-0000-4000-8000-000000000000";
    const read = await fetch(`${base}/v1/connections/${id}/token`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(read.status).toBe(404);
    const refused = await fetch(`${base}/v1/connections`, {
      headers: { authorization: "Bearer not-the-key-0123456789" },
    });
    expect(refused.status).toBe(401);
    app.child.kill("SIGTERM");
    expect(await app.exited).toBe(0);

    const text = readFileSync(file, "utf8");
    const lines = text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines).toEqual([
      expect.objectContaining({
        audit: true,
        name: "api",
        kind: "token_read",
        keyName: "key1",
        connectionId: id,
        ip: "127.0.0.1",
        outcome: "not_found",
      }),
      expect.objectContaining({ event: "api_key_rejected", route: "/v1/connections" }),
    ]);
    expect(text).not.toContain(API_KEY);
    expect(text).not.toContain("not-the-key-0123456789");
    // The application log (stdout) holds none of it.
    expect(app.logs.some((line) => line.audit === true)).toBe(false);
  });

  it("stops the api at start, naming AUDIT_LOG, when its file cannot be opened", async () => {
    const file = join(dir, "no-such-dir", "audit.log");
    const app = startApp("api", { ...baseEnv(), AUDIT_LOG: file });
    expect(await app.exited).toBe(1);
    expect(app.logs.at(-1)).toMatchObject({
      level: "fatal",
      msg: `AUDIT_LOG: cannot open ${file} for appending (ENOENT)`,
    });
  });
});

describe("a database without the schema", () => {
  it.each<AppName>(["api", "scheduler", "worker"])(
    "stops the %s at start, naming npm run db:migrate, when migrations are missing or the database is",
    async (name) => {
      const empty = await createEmptyDatabase();
      try {
        const unmigrated = startApp(name, { ...baseEnv(), DATABASE_URL: empty.url });
        expect(await unmigrated.exited).toBe(1);
        expect(unmigrated.logs.at(-1)).toMatchObject({
          level: "fatal",
          msg: expect.stringMatching(
            /has no Evergreen schema: run `npm run db:migrate` \(in the image: `node dist\/migrate.mjs`\)$/,
          ),
        });
      } finally {
        await empty.drop();
      }
      const missing = new URL(db.url);
      missing.pathname = "/evergreen_no_such_database";
      const absent = startApp(name, { ...baseEnv(), DATABASE_URL: missing.toString() });
      expect(await absent.exited).toBe(1);
      expect(absent.logs.at(-1)).toMatchObject({
        level: "fatal",
        msg: 'database "evergreen_no_such_database" does not exist: run `npm run db:migrate` (in the image: `node dist/migrate.mjs`), which creates it and applies the migrations',
      });
    },
  );
});

describe("configuration errors", () => {
  it("stop the api at start with one line per problem", async () => {
    const app = startApp("api", {
      NODE_ENV: "production",
      PORT: "not-a-port",
      REDIS_URL: "localhost:6379",
      LOG_LEVEL: "chatty",
    });
    expect(await app.exited).toBe(1);
    const lines = app.stderr().trim().split("\n");
    expect(lines[0]).toBe("api: invalid configuration, not starting:");
    expect(
      lines
        .slice(1)
        .map((line) => line.trim().split(":")[0]?.replace("- ", ""))
        .sort(),
    ).toEqual(["API_KEYS", "ENCRYPTION_KEYS", "LOG_LEVEL", "PORT", "REDIS_URL"]);
  });

  it("stop the api on bad API_KEYS entries, one line each, never showing a key", async () => {
    const key = "a-scoped-key-0123456789";
    const app = startApp("api", {
      ...baseEnv(),
      API_KEYS: `app:${key}:tokens:write,:${key}x:admin,app:${key}:admin`,
    });
    expect(await app.exited).toBe(1);
    const stderr = app.stderr();
    expect(stderr).toContain('API_KEYS: entry 1: unknown scope "tokens:write"');
    expect(stderr).toContain("API_KEYS: entry 2: the name is empty");
    expect(stderr).toContain("API_KEYS: entry 3: the same name as entry 1");
    expect(stderr).toContain("API_KEYS: entry 3: the same key as entry 1");
    expect(stderr).not.toContain(key);
  });

  it("stop the worker on a malformed encryption key", async () => {
    const app = startApp("worker", { ...baseEnv(), ENCRYPTION_KEYS: "k1:c2hvcnQ=" });
    expect(await app.exited).toBe(1);
    expect(app.stderr()).toContain('ENCRYPTION_KEYS: key "k1": must be base64 of exactly 32 bytes');
  });
});
