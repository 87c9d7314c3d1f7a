import { once } from "node:events";
import { createServer, type RequestListener, type Server } from "node:http";
import {
  type AddressInfo,
  createServer as createTcpServer,
  Socket,
  type Server as TcpServer,
} from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseEgressAllowlist } from "./allowlist";
import { EgressClient, type EgressClientOptions } from "./egress-client";
import type { ResolveAll } from "./guarded-agents";

const servers: (Server | TcpServer)[] = [];
const clients: EgressClient[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) {
    if ("closeAllConnections" in server) server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A real HTTP server on 127.0.0.1 that counts the connections it accepts. */
async function serve(handler: RequestListener) {
  const server = createServer(handler);
  let connections = 0;
  server.on("connection", () => {
    connections += 1;
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  return { port, url: `http://127.0.0.1:${port}/token`, connections: () => connections };
}

/** A raw TCP server, for peers that do not speak HTTP. */
async function serveTcp(onConnection: (socket: Socket) => void) {
  const server = createTcpServer((socket) => {
    sockets.push(socket);
    onConnection(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

function client(options: EgressClientOptions = {}): EgressClient {
  const created = new EgressClient(options);
  clients.push(created);
  return created;
}

const post = (url: string) =>
  ({ url, method: "POST", headers: { "content-type": "text/plain" }, body: "hi" }) as const;

const json =
  (status: number, body: unknown): RequestListener =>
  (_req, res) => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };

describe("EgressClient", () => {
  it("sends the request and answers status, headers and body", async () => {
    let received = "";
    const server = await serve((req, res) => {
      req.setEncoding("utf8");
      req.on("data", (chunk: string) => {
        received += chunk;
      });
      req.on("end", () => json(400, { error: "invalid_grant" })(req, res));
    });
    const answer = await client({ allowLoopback: true }).send(post(server.url), {
      timeoutMs: 2_000,
    });
    expect(answer).toMatchObject({
      status: 400,
      headers: { "content-type": "application/json" },
      body: '{"error":"invalid_grant"}',
    });
    expect(received).toBe("hi");
  });

  it("refuses a loopback address unless allowed, before connecting", async () => {
    const server = await serve(json(200, {}));
    expect(await client().send(post(server.url), { timeoutMs: 2_000 })).toEqual({
      failure: "refused_by_policy",
    });
    expect(
      await client().send(post(`http://[::ffff:7f00:1]:${server.port}/`), { timeoutMs: 2_000 }),
    ).toEqual({
      failure: "refused_by_policy",
    });
    // The https agent is guarded alike: refused before any TLS handshake could start.
    expect(
      await client().send(post(`https://127.0.0.1:${server.port}/`), { timeoutMs: 2_000 }),
    ).toEqual({ failure: "refused_by_policy" });
    expect(
      await client().send(post(`https://localhost:${server.port}/`), { timeoutMs: 2_000 }),
    ).toEqual({ failure: "refused_by_policy" });
    expect(server.connections()).toBe(0);
    const allowlisted = client({ allowlist: parseEgressAllowlist(`127.0.0.1:${server.port}`) });
    expect(await allowlisted.send(post(server.url), { timeoutMs: 2_000 })).toMatchObject({
      status: 200,
    });
  });

  it("refuses a name that resolves to loopback, unless the allowlist names it or covers its address", async () => {
    const server = await serve(json(200, {}));
    const byName = `http://localhost:${server.port}/token`;
    expect(await client().send(post(byName), { timeoutMs: 2_000 })).toEqual({
      failure: "refused_by_policy",
    });
    expect(server.connections()).toBe(0);
    for (const allowlist of ["localhost", `localhost:${server.port}`, "127.0.0.0/8,::1"]) {
      const allowed = client({ allowlist: parseEgressAllowlist(allowlist) });
      expect(await allowed.send(post(byName), { timeoutMs: 2_000 }), allowlist).toMatchObject({
        status: 200,
      });
    }
    expect(
      await client({ allowLoopback: true }).send(post(byName), { timeoutMs: 2_000 }),
    ).toMatchObject({
      status: 200,
    });
  });

  it("checks the addresses each new connection resolves to, so a rebinding name is refused", async () => {
    // Every answer closes its connection, so each request resolves the name again.
    const server = await serve((_req, res) => {
      res.writeHead(200, { connection: "close" }).end("{}");
    });
    const answers = [["127.0.0.1"], ["127.0.0.2"], ["127.0.0.1", "10.0.0.7"]];
    const rebinding: ResolveAll = (_hostname, _options, callback) => {
      const next = answers.shift() ?? [];
      callback(
        null,
        next.map((address) => ({ address, family: 4 })),
      );
    };
    const egress = client({
      allowlist: parseEgressAllowlist("127.0.0.1"),
      resolve: rebinding,
    });
    const url = `http://rebind.test:${server.port}/token`;
    expect(await egress.send(post(url), { timeoutMs: 2_000 })).toMatchObject({ status: 200 });
    expect(await egress.send(post(url), { timeoutMs: 2_000 })).toEqual({
      failure: "refused_by_policy",
    });
    // One internal address among allowed ones refuses the name.
    expect(await egress.send(post(url), { timeoutMs: 2_000 })).toEqual({
      failure: "refused_by_policy",
    });
    expect(server.connections()).toBe(1);
  });

  it("refuses schemes other than http and https", async () => {
    expect(
      await client({ allowLoopback: true }).send(
        { url: "data:application/json,{}", method: "GET" },
        { timeoutMs: 2_000 },
      ),
    ).toEqual({ failure: "refused_by_policy" });
  });

  it("cuts an endless answer after maxResponseBytes, with memory to match", async () => {
    const chunk = Buffer.alloc(65_536, "x");
    const total = 300 * 1_048_576;
    let written = 0;
    let hungUp: (bytes: number) => void = () => {};
    const writtenAtHangUp = new Promise<number>((resolve) => {
      hungUp = resolve;
    });
    const server = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.on("close", () => hungUp(written));
      const pump = () => {
        while (written < total && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    const rssBefore = process.memoryUsage().rss;
    const answer = await client({ allowLoopback: true }).send(post(server.url), {
      timeoutMs: 10_000,
    });
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    expect(answer).toEqual({ failure: "response_too_large" });
    // What the server could write before the client hung up: 64 KiB read plus what socket
    // buffers held; nowhere near the 300 MB it meant to send.
    expect(await writtenAtHangUp).toBeLessThan(16 * 1_048_576);
    expect(rssGrowth).toBeLessThan(64 * 1_048_576);
  });

  it("refuses an answer whose Content-Length exceeds the limit without reading it", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "1000" }).end("x".repeat(1000));
    });
    const egress = client({ allowLoopback: true });
    expect(
      await egress.send(post(server.url), { timeoutMs: 2_000, maxResponseBytes: 999 }),
    ).toEqual({
      failure: "response_too_large",
    });
    expect(
      await egress.send(post(server.url), { timeoutMs: 2_000, maxResponseBytes: 1000 }),
    ).toMatchObject({ status: 200, body: "x".repeat(1000) });
  });

  it("with discardBody, answers the status whatever the body, keeping the connection when it is short", async () => {
    let size = 100;
    const server = await serve((_req, res) => {
      // Chunked, no Content-Length: only reading tells the size.
      res.writeHead(200, { "content-type": "text/html" });
      res.end("x".repeat(size));
    });
    const egress = client({ allowLoopback: true });
    const options = { timeoutMs: 2_000, maxResponseBytes: 1_000, discardBody: true };
    expect(await egress.send(post(server.url), options)).toEqual({
      status: 200,
      headers: expect.any(Object),
      body: "",
    });
    expect(await egress.send(post(server.url), options)).toMatchObject({ status: 200 });
    expect(server.connections()).toBe(1);
    size = 1_000_000;
    expect(await egress.send(post(server.url), options)).toMatchObject({ status: 200, body: "" });
    expect(await egress.send(post(server.url), options)).toMatchObject({ status: 200 });
    // The long body closed its connection; the request after it opened another.
    expect(server.connections()).toBe(2);
  });

  it("answers a redirect as it is, without following it", async () => {
    const target = await serve(json(200, { followed: true }));
    const server = await serve((_req, res) => {
      res.writeHead(307, { location: target.url }).end();
    });
    expect(
      await client({ allowLoopback: true }).send(post(server.url), { timeoutMs: 2_000 }),
    ).toMatchObject({ status: 307, body: "" });
    expect(target.connections()).toBe(0);
  });

  it("goes straight to the destination even when HTTP_PROXY is set", async () => {
    const proxy = await serve(json(502, {}));
    const server = await serve(json(200, { direct: true }));
    const saved = process.env.HTTP_PROXY;
    process.env.HTTP_PROXY = proxy.url;
    try {
      expect(
        await client({ allowLoopback: true }).send(post(server.url), { timeoutMs: 2_000 }),
      ).toMatchObject({ status: 200 });
    } finally {
      if (saved === undefined) delete process.env.HTTP_PROXY;
      else process.env.HTTP_PROXY = saved;
    }
    expect(proxy.connections()).toBe(0);
  });

  it("gives one code for a refused port and a malformed answer, and another for a timeout", async () => {
    const egress = client({ allowLoopback: true });
    const closedPort = await serveTcp(() => {});
    await new Promise((resolve) => servers.pop()?.close(resolve));
    const garbage = await serveTcp((socket) => socket.end("NOT HTTP AT ALL\r\n\r\n"));
    const hanging = await serveTcp(() => {});
    const codes = await Promise.all(
      [closedPort, garbage, hanging].map((port) =>
        egress.send(post(`http://127.0.0.1:${port}/token`), { timeoutMs: 300 }),
      ),
    );
    expect(codes).toEqual([
      { failure: "unreachable" },
      { failure: "unreachable" },
      { failure: "timeout" },
    ]);
  });

  it("turns TCP keep-alive on once per connection, not again for each request on it", async () => {
    const server = await serve(json(200, { ok: true }));
    const egress = client({ allowLoopback: true });
    const setKeepAlive = vi.spyOn(Socket.prototype, "setKeepAlive");
    try {
      for (let i = 0; i < 3; i += 1) {
        expect(await egress.send(post(server.url), { timeoutMs: 2_000 })).toMatchObject({
          status: 200,
        });
      }
      expect(server.connections()).toBe(1);
      // Node's agent and axios each asked again per request: six system calls for three.
      const ours = setKeepAlive.mock.contexts.filter(
        (socket) => (socket as Socket).remotePort === server.port,
      );
      expect(ours).toHaveLength(1);
    } finally {
      setKeepAlive.mockRestore();
    }
  });

  it("closes a kept-alive connection idle for 4 s, before a server's common idle limit", async () => {
    const egress = client({ allowLoopback: true });
    let connection: Socket | undefined;
    const port = await serveTcp((socket) => {
      connection = socket;
      socket.once("data", () => {
        socket.write(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        );
      });
    });
    expect(
      await egress.send(post(`http://127.0.0.1:${port}/token`), { timeoutMs: 2_000 }),
    ).toMatchObject({ status: 200 });
    if (!connection) throw new Error("no connection");
    // The client ends it (the server never does): a close the server sees.
    await once(connection, "close");
  }, 10_000);

  it("keeps a request in flight past 4 s until its own time limit", async () => {
    const egress = client({ allowLoopback: true });
    const port = await serveTcp((socket) => {
      socket.once("data", () => {
        setTimeout(() => {
          socket.write(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
          );
        }, 4_500);
      });
    });
    expect(
      await egress.send(post(`http://127.0.0.1:${port}/token`), { timeoutMs: 8_000 }),
    ).toMatchObject({ status: 200 });
  }, 10_000);

  it("gives a request caught by a freeze its time limit again from the waking, never past notAfter", async () => {
    const egress = client({ allowLoopback: true });
    const server = await serve((_req, res) => {
      setTimeout(() => json(200, { ok: true })(_req, res), 100);
    });
    /** The event loop held for 600 ms, as a SIGSTOP or a frozen VM would, as the request starts. */
    const frozen = (notAfter?: number) => {
      const pending = egress.send(post(server.url), {
        timeoutMs: 200,
        ...(notAfter === undefined ? {} : { notAfter }),
      });
      const until = performance.now() + 600;
      while (performance.now() < until) {
        // frozen
      }
      return pending;
    };
    expect(await frozen()).toMatchObject({ status: 200 });
    expect(await frozen(performance.now() + 100)).toEqual({ failure: "timeout" });
  });

  it("knows a freeze that ended just after the limit was due, by the event loop's missed heartbeats", async () => {
    const egress = client({ allowLoopback: true });
    const server = await serve((_req, res) => {
      setTimeout(() => json(200, { ok: true })(_req, res), 100);
    });
    // Held 530 ms against a 500 ms limit: the limit fires 30 ms late, which alone reads as
    // a loaded event loop, not a freeze; the request only went out on waking.
    const pending = egress.send(post(server.url), { timeoutMs: 500 });
    const until = performance.now() + 530;
    while (performance.now() < until) {
      // frozen
    }
    expect(await pending).toMatchObject({ status: 200 });
  });

  it("says interrupted when the connection is reset or closed after the whole request came (the peer may have done the work)", async () => {
    const egress = client({ allowLoopback: true });
    // The request read in full (its body ends the post), then no answer: reset, or closed.
    const afterRequest = (end: (socket: Socket) => void) =>
      serveTcp((socket) => {
        let received = "";
        socket.on("data", (chunk: Buffer) => {
          received += chunk.toString("utf8");
          if (received.endsWith("\r\n\r\nhi")) end(socket);
        });
      });
    const resetting = await afterRequest((socket) => socket.resetAndDestroy());
    const closing = await afterRequest((socket) => socket.end());
    for (const port of [resetting, closing]) {
      expect(
        await egress.send(post(`http://127.0.0.1:${port}/token`), { timeoutMs: 2_000 }),
      ).toEqual({ failure: "interrupted" });
    }
  });

  it("says interrupted when the answer began and its body broke off (the peer did the work)", async () => {
    const egress = client({ allowLoopback: true });
    // A 200 promising 1000 bytes, a few sent, then the connection reset.
    const breaking = await serveTcp((socket) => {
      socket.once("data", () => {
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"access_',
          () => socket.resetAndDestroy(),
        );
      });
    });
    expect(
      await egress.send(post(`http://127.0.0.1:${breaking}/token`), { timeoutMs: 2_000 }),
    ).toEqual({ failure: "interrupted" });
  });
});
