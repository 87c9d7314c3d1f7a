import { Agent, get, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { createDatabase } from "@evergreen/db";
import { createRedis } from "@evergreen/redis";
import { describe, expect, it, vi } from "vitest";
import { TEST_API_KEY, testServer } from "./test-server";

const KEY = TEST_API_KEY;
const server = (checks = {}) => testServer({ checks });

describe("api server", () => {
  it.each([
    ["no header", undefined],
    ["a wrong key", `Bearer ${KEY.slice(0, -1)}x`],
    ["a key of another length", `Bearer ${KEY}extra`],
    ["another scheme", `Basic ${KEY}`],
  ])("refuses /v1 with %s", async (_label, authorization) => {
    const app = await server();
    const response = await app.inject({
      url: "/v1/connections",
      headers: authorization ? { authorization } : {},
    });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toEqual({
      error: "unauthorized",
      message: "missing or unknown API key",
    });
  });

  it("guards routes by what the router matched, not by the raw URL", async () => {
    const app = await server();
    app.get("/v1/probe", async () => ({ reached: true }));
    for (const url of ["/%761/probe", "/v1/probe", "/V1/probe", "/v1//probe"]) {
      expect((await app.inject({ url })).statusCode).toBe(401);
    }
    const ok = await app.inject({
      url: "/%761/probe",
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(ok.json()).toEqual({ reached: true });
  });

  it("lets any configured key through to routing", async () => {
    const app = await server();
    const response = await app.inject({
      url: "/v1/nothing-here",
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: "not_found", message: "no such route" });
  });

  it("serves health without a key, and readiness from its checks", async () => {
    const app = await server({
      database: async () => 1,
      redis: async () => Promise.reject(new Error("down")),
    });
    expect((await app.inject({ url: "/healthz" })).json()).toEqual({ status: "ok" });
    const ready = await app.inject({ url: "/readyz" });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({
      status: "not_ready",
      checks: { database: "ok", redis: "unavailable" },
    });
  });

  it("answers 503 when PostgreSQL or Redis is unreachable, 500 for anything else, never a stack", async () => {
    // Real clients on ports nothing listens on: the errors the drivers really throw.
    const { prisma, pool, close } = createDatabase({
      url: "postgresql://postgres@127.0.0.1:1/none",
    });
    const redis = createRedis("redis://127.0.0.1:1", "producer");
    redis.on("error", () => {});
    try {
      const app = await server();
      app.get("/v1/db", () => prisma.integration.findMany());
      app.get("/v1/sql", () => pool.query("SELECT 1"));
      app.get("/v1/redis", () => redis.get("key"));
      app.get("/v1/bug", () => {
        throw new TypeError("secret detail at /srv/app.ts:12");
      });
      const auth = { authorization: `Bearer ${KEY}` };
      for (const url of ["/v1/db", "/v1/sql", "/v1/redis"]) {
        const response = await app.inject({ url, headers: auth });
        expect(response.statusCode).toBe(503);
        expect(response.headers["retry-after"]).toBe("5");
        expect(response.json()).toMatchObject({ error: "unavailable" });
      }
      const bug = await app.inject({ url: "/v1/bug", headers: auth });
      expect(bug.statusCode).toBe(500);
      expect(bug.json()).toEqual({ error: "internal", message: "internal error" });
      expect(bug.body).not.toContain("secret detail");
    } finally {
      redis.disconnect();
      await close();
    }
  });
});

describe("closing", () => {
  it("ends the keep-alive connection of a request still running when close began", async () => {
    let release = () => {};
    let markStarted = () => {};
    const started = new Promise<void>((resolve) => {
      markStarted = resolve;
    });
    const app = await testServer({
      routes: [
        (instance) =>
          instance.get("/v1/slow", async () => {
            markStarted();
            await new Promise<void>((resolve) => {
              release = resolve;
            });
            return { done: true };
          }),
      ],
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    const agent = new Agent({ keepAlive: true });
    const answer = new Promise<IncomingHttpHeaders>((resolve, reject) => {
      get(
        {
          port: (app.server.address() as AddressInfo).port,
          path: "/v1/slow",
          agent,
          headers: { authorization: `Bearer ${KEY}` },
        },
        (response) => {
          response.resume();
          response.on("end", () => resolve(response.headers));
        },
      ).on("error", reject);
    });
    await started;

    const closed = app.close();
    // The answer leaves once the listener is shut: Node's close() has reaped the idle
    // sockets already, and this one is busy.
    await vi.waitFor(() => expect(app.server.listening).toBe(false), { interval: 5 });
    release();
    expect((await answer).connection).toBe("close");
    // Otherwise close() waits for the client's idle keep-alive socket (72 s in fastify).
    await closed;
    agent.destroy();
  });
});
