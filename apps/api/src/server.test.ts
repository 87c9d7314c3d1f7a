import { execFile } from "node:child_process";
import { once } from "node:events";
import { Agent, get, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { createDatabase } from "@evergreen/db";
import { databaseUrl } from "@evergreen/db/testing";
import { createRedis } from "@evergreen/redis";
import { describe, expect, it, vi } from "vitest";
import { HttpError } from "./http-errors";
import { registerRoute } from "./route";
import { AUTH, capturingLogger, TEST_API_KEY, testRoute, testServer } from "./test-server";

const KEY = TEST_API_KEY;
/** For routes whose scope a test does not care about: its keys are bare, with every scope. */
const server = (checks = {}) => testServer({ checks });

describe("api server", () => {
  it.each([
    ["no header", undefined],
    ["a wrong key", `Bearer ${KEY.slice(0, -1)}x`],
    ["a key of another length", `Bearer ${KEY}extra`],
    ["another scheme", `Basic ${KEY}`],
  ])("refuses /v1 with %s", async (_label, authorization) => {
    const app = await server();
    registerRoute(app, testRoute("GET", "/v1/probe"), async () => ({ reached: true }));
    const response = await app.inject({
      url: "/v1/probe",
      headers: authorization ? { authorization } : {},
    });
    expect(response.statusCode).toBe(401);
    expect(response.headers["www-authenticate"]).toBe('Bearer realm="evergreen"');
    expect(response.json()).toEqual({
      error: "unauthorized",
      message: "missing or unknown API key",
    });
  });

  it("marks every answer uncacheable, and every 503 with when to retry", async () => {
    const app = await server();
    registerRoute(app, testRoute("GET", "/v1/probe"), async () => ({ reached: true }));
    registerRoute(app, testRoute("GET", "/v1/busy"), async () => {
      throw new HttpError(503, "exchange_failed", "the provider failed");
    });
    const auth = { authorization: `Bearer ${KEY}` };
    const ok = await app.inject({ url: "/v1/probe", headers: auth });
    expect(ok.headers["cache-control"]).toBe("no-store");
    const busy = await app.inject({ url: "/v1/busy", headers: auth });
    expect(busy.statusCode).toBe(503);
    expect(busy.headers["retry-after"]).toBe("5");
    expect(busy.headers["cache-control"]).toBe("no-store");
  });

  it("guards routes by what the router matched, not by the raw URL", async () => {
    const app = await server();
    registerRoute(app, testRoute("GET", "/v1/probe"), async () => ({ reached: true }));
    for (const url of ["/%761/probe", "/v1/probe"]) {
      expect((await app.inject({ url })).statusCode).toBe(401);
    }
    // Spellings the router does not match reach no route at all.
    for (const url of ["/V1/probe", "/v1//probe"]) {
      expect((await app.inject({ url })).json()).toEqual({
        error: "not_found",
        message: "no such route",
      });
    }
    const ok = await app.inject({
      url: "/%761/probe",
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(ok.json()).toEqual({ reached: true });
  });

  it.each([
    ["GET", "/v1/nothing-here"],
    ["GET", "/nothing-here"],
    ["PUT", "/v1/probe"],
    ["GET", "/v1/probe/deeper"],
    ["GET", "/v1/%ff"],
    ["GET", "/%ff"],
    ["GET", `/v1/${"a".repeat(300)}`],
    ["POST", "/healthz"],
  ] as const)(
    "answers %s %s, an unknown route, with 404 whether or not a key comes with it",
    async (method, url) => {
      const app = await server();
      registerRoute(app, testRoute("GET", "/v1/probe"), async () => ({ reached: true }));
      for (const headers of [
        { authorization: `Bearer ${KEY}` },
        {},
        { authorization: "Bearer nope" },
      ]) {
        const response = await app.inject({ method, url, headers });
        expect(response.statusCode).toBe(404);
        expect(response.json()).toEqual({ error: "not_found", message: "no such route" });
      }
    },
  );

  it("refuses a compressed body with 415 and the encoding it reads, after the key check", async () => {
    const app = await server();
    registerRoute(app, testRoute("POST", "/v1/probe"), async () => ({ reached: true }));
    registerRoute(app, testRoute("GET", "/v1/probe"), async () => ({ read: true }));
    const post = (headers: Record<string, string>) =>
      app.inject({
        method: "POST",
        url: "/v1/probe",
        headers: { "content-type": "application/json", ...headers },
        payload: gzipSync(Buffer.from("{}")),
      });
    const refused = await post({ ...AUTH, "content-encoding": "gzip" });
    expect(refused.statusCode).toBe(415);
    expect(refused.headers["accept-encoding"]).toBe("identity");
    expect(refused.json()).toMatchObject({ error: "unsupported_media_type" });
    expect((await post({ "content-encoding": "gzip" })).statusCode).toBe(401);
    expect((await post({ ...AUTH, "transfer-encoding": "gzip, chunked" })).statusCode).toBe(415);
    // No body, nothing to decode: a client that sets the header on every request is served.
    const read = await app.inject({
      url: "/v1/probe",
      headers: { ...AUTH, "content-encoding": "gzip" },
    });
    expect(read.json()).toEqual({ read: true });
    const plain = await app.inject({
      method: "POST",
      url: "/v1/probe",
      headers: { ...AUTH, "content-type": "application/json", "content-encoding": "identity" },
      payload: "{}",
    });
    expect(plain.json()).toEqual({ reached: true });
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
    const { lines, log } = capturingLogger();
    try {
      const app = await testServer({ log });
      registerRoute(app, testRoute("GET", "/v1/db"), () => prisma.integration.findMany());
      registerRoute(app, testRoute("GET", "/v1/sql"), () => pool.query("SELECT 1"));
      registerRoute(app, testRoute("GET", "/v1/redis"), () => redis.get("key"));
      registerRoute(app, testRoute("GET", "/v1/bug"), () => {
        throw new TypeError("secret detail at /srv/app.ts:12");
      });
      const auth = { authorization: `Bearer ${KEY}` };
      for (const url of ["/v1/db", "/v1/sql", "/v1/sql", "/v1/sql", "/v1/redis"]) {
        const response = await app.inject({ url, headers: auth });
        expect(response.statusCode).toBe(503);
        expect(response.headers["retry-after"]).toBe("5");
        expect(response.json()).toMatchObject({ error: "unavailable" });
      }
      // One line per kind of failure while the outage lasts, not one per request.
      const outageLines = lines.filter((line) => line.includes("database or Redis unreachable"));
      expect(outageLines).toHaveLength(3);
      const bug = await app.inject({ url: "/v1/bug", headers: auth });
      expect(bug.statusCode).toBe(500);
      expect(bug.json()).toEqual({ error: "internal", message: "internal error" });
      expect(bug.body).not.toContain("secret detail");
    } finally {
      redis.disconnect();
      await close();
    }
  });

  it("answers 503 when PostgreSQL ends a query as it shuts down (SQLSTATE 57P under Prisma)", async () => {
    // A real server-side termination, as `pg_ctl stop -m immediate` or a restart does: the
    // running query fails with 57P01, wrapped by Prisma's driver adapter.
    const { prisma, pool, close } = createDatabase({ url: databaseUrl("postgres") });
    try {
      const app = await server();
      const tag = `chaos_probe_${process.pid}`;
      registerRoute(app, testRoute("GET", "/v1/slow"), () =>
        prisma.$queryRawUnsafe(`SELECT pg_sleep(30) AS ${tag}`),
      );
      const answer = app.inject({ url: "/v1/slow", headers: { authorization: `Bearer ${KEY}` } });
      const find = `SELECT pid FROM pg_stat_activity WHERE query LIKE '%AS ${tag}' AND pid <> pg_backend_pid()`;
      await vi.waitFor(async () => expect((await pool.query(find)).rowCount).toBe(1), {
        timeout: 10_000,
      });
      await pool.query(`SELECT pg_terminate_backend(pid) FROM (${find}) AS running`);
      const response = await answer;
      expect(response.statusCode).toBe(503);
      expect(response.json()).toMatchObject({ error: "unavailable" });
    } finally {
      await close();
    }
  });

  it("lets a fetch client in another process read the 413 it gets while still sending", async () => {
    const app = await server();
    registerRoute(app, testRoute("POST", "/v1/echo"), async () => ({ reached: true }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      const { port } = app.server.address() as { port: number };
      // A client in its own process, as in production: in the api's own process the
      // event loop happens to read the answer before the reset, and hides the failure.
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["--input-type=module", "-e", OVERSIZED_POSTS, `http://127.0.0.1:${port}/v1/echo`, KEY],
        { maxBuffer: 1024 * 1024 },
      );
      const results = JSON.parse(stdout) as {
        post: string;
        status: number | string;
        body: string;
      }[];
      expect(results).toHaveLength(8);
      for (const result of results) {
        expect(result, result.post).toMatchObject({ status: 413 });
        expect(JSON.parse(result.body)).toMatchObject({ error: "payload_too_large" });
      }
    } finally {
      await app.close();
    }
  }, 120_000);

  it("cuts off a client that keeps an oversized body coming past the linger time", async () => {
    // The client never sends the rest: the server must not wait for it forever.
    const answer = await stalledPost(
      `Authorization: Bearer ${KEY}\r\nContent-Length: ${10 * 1024 * 1024}\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('"error":"payload_too_large"');
  });

  it("refuses an oversized body before inviting it with 100 Continue", async () => {
    const expect100 = "Expect: 100-continue\r\n";
    const oversized = await rawExchange(
      `POST /v1/echo HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n${expect100}` +
        `Authorization: Bearer ${KEY}\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`,
    );
    expect(oversized).toMatch(/^HTTP\/1\.1 413 /);
    // A body within the limit is still invited, and answered.
    const small = await rawExchange(
      `POST /v1/echo HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n${expect100}` +
        `Authorization: Bearer ${KEY}\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}`,
    );
    expect(small).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  });

  it.each([
    ["a doubled Content-Length", "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400],
    [
      "Content-Length with Transfer-Encoding",
      "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
      400,
    ],
    ["a non-numeric Content-Length", "Content-Length: two\r\n\r\n{}", 400],
    ["headers over 16 KiB", `X-Pad: ${"a".repeat(17 * 1024)}\r\n\r\n`, 431],
  ])("answers a request Node's parser refuses (%s) in the error shape", async (_, rest, status) => {
    const answer = await rawExchange(`POST /v1/echo HTTP/1.1\r\nHost: api\r\n${rest}`);
    expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
    expect(body).toEqual({ error: "invalid_request", message: expect.any(String) });
  });

  it("cuts off a client without a key that stalls in the body of its post", async () => {
    // It held the connection, and a shutdown's server.close(), for as long as it liked.
    const answer = await stalledPost("Content-Length: 1000\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
  });
});

/**
 * Posts to a server whose linger time is 100 ms, with `headers` and the first bytes of a
 * body whose rest never comes; resolves with what the server sent once it closed the
 * connection (a test that never resolves is a server waiting forever).
 */
function stalledPost(headers: string): Promise<string> {
  return rawExchange(
    `POST /v1/echo HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n${headers}\r\n{"pad":"`,
  );
}

/** Writes `request` as is to a server whose linger time is 100 ms; what it sent, once closed. */
async function rawExchange(request: string): Promise<string> {
  const app = await testServer({ bodyLingerMs: 100 });
  registerRoute(app, testRoute("POST", "/v1/echo"), async () => ({ reached: true }));
  await app.listen({ port: 0, host: "127.0.0.1" });
  try {
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    socket.write(request);
    let answer = "";
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("utf8");
    });
    socket.on("error", () => {});
    await once(socket, "close");
    return answer;
  } finally {
    await app.close();
  }
}

/**
 * Run by a child `node`: posts oversized bodies with Node's fetch (2 MiB and 64 MiB, with
 * a length and chunked without one) and prints what it got, a status or a socket error.
 */
const OVERSIZED_POSTS = `
const [url, key] = process.argv.slice(1);
const MiB = 1024 * 1024;
const chunked = (size) => {
  const chunk = new Uint8Array(64 * 1024).fill(120);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= size) return controller.close();
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
};
const posts = [
  ["2 MiB with a length", () => JSON.stringify({ pad: "x".repeat(2 * MiB) })],
  ["2 MiB chunked", () => chunked(2 * MiB)],
  ...[1, 2, 3].flatMap((n) => [
    ["64 MiB with a length #" + n, () => Buffer.alloc(64 * MiB, 120)],
    ["64 MiB chunked #" + n, () => chunked(64 * MiB)],
  ]),
];
const results = [];
for (const [post, body] of posts) {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { authorization: "Bearer " + key, "content-type": "application/json" },
      body: body(),
      duplex: "half",
    });
    results.push({ post, status: response.status, body: await response.text() });
  } catch (error) {
    results.push({ post, status: String(error.cause?.code ?? error.cause ?? error), body: "{}" });
  }
}
process.stdout.write(JSON.stringify(results));
`;
describe("a client that goes away while sending its body", () => {
  it("is logged as the client's doing, not as a database or Redis outage", async () => {
    const { lines, log } = capturingLogger();
    const app = await testServer({ log });
    registerRoute(app, testRoute("POST", "/v1/echo"), async () => ({ reached: true }));
    let reading: () => void = () => {};
    const bodyRead = new Promise<void>((resolve) => {
      reading = resolve;
    });
    app.addHook("preParsing", async () => reading());
    await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      const { port } = app.server.address() as { port: number };
      const socket = connect(port, "127.0.0.1");
      await once(socket, "connect");
      socket.write(
        `POST /v1/echo HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pad`,
      );
      await bodyRead;
      socket.destroy();
      await vi.waitFor(() => expect(lines.join("")).toContain("closed its request"));
      expect(lines.join("")).not.toContain("unreachable");
    } finally {
      await app.close();
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
          registerRoute(instance, testRoute("GET", "/v1/slow"), async () => {
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
  it("serves a request that arrives while the api stops, in the API's own shape, not fastify's 503", async () => {
    const app = await server();
    registerRoute(app, testRoute("GET", "/v1/probe"), async () => ({ reached: true }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    const socket = connect((app.server.address() as AddressInfo).port, "127.0.0.1");
    await once(socket, "connect");
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    // Half a request when the stop begins: its socket is not idle, so close() leaves it.
    socket.write(`GET /v1/probe HTTP/1.1\r\nhost: api\r\nauthorization: Bearer ${KEY}\r\n`);
    const closed = app.close();
    await vi.waitFor(() => expect(app.server.listening).toBe(false), { interval: 5 });
    socket.end("\r\n");
    await once(socket, "close");
    await closed;
    const answer = Buffer.concat(received).toString("utf8");
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/connection: close/i);
    expect(answer).toContain('{"reached":true}');
  });
});

describe("request metrics and access lines", () => {
  it("name the route template, never the path or its query string; unmatched routes as such", async () => {
    const { lines, log } = capturingLogger();
    const app = await testServer({ log });
    registerRoute(app, testRoute("GET", "/v1/connections/:id/token"), async () => ({
      accessToken: "t",
    }));
    const id = crypto.randomUUID();
    const secret = "s3cr3t-in-a-query";
    await app.inject({
      url: `/v1/connections/${id}/token?minValidity=60&x=${secret}`,
      headers: AUTH,
    });
    await app.inject({ url: `/v1/connections/${id}/token` });
    await app.inject({ url: `/v1/no/such/${id}?code=${secret}`, headers: AUTH });
    const scrape = await app.inject({ url: "/metrics" });

    const route = "/v1/connections/:id/token";
    expect(scrape.body).toContain(
      `evergreen_http_requests_total{route="${route}",method="GET",status="200"} 1`,
    );
    expect(scrape.body).toContain(
      `evergreen_http_requests_total{route="${route}",method="GET",status="401"} 1`,
    );
    expect(scrape.body).toContain(
      'evergreen_http_requests_total{route="unmatched",method="GET",status="404"} 1',
    );
    expect(scrape.body).toContain(
      `evergreen_http_request_duration_seconds_count{route="${route}",method="GET"} 2`,
    );
    expect(scrape.body).not.toContain(id);

    const access = lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === "request answered");
    // One line per request at info; the scrape's is at debug, below the default level.
    expect(
      access.map(({ level, method, route, status }) => [level, method, route, status]),
    ).toEqual([
      ["info", "GET", route, 200],
      ["info", "GET", route, 401],
      ["info", "GET", "unmatched", 404],
    ]);
    for (const line of access) expect(line.ms).toEqual(expect.any(Number));
    const text = lines.join("");
    for (const leak of [secret, id, "minValidity", "?"]) expect(text).not.toContain(leak);
  });
});
