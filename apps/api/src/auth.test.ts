import { Writable } from "node:stream";
import type { ApiScope } from "@evergreen/config";
import { createLogger } from "@evergreen/observability";
import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import { createWebhookQueue, WebhookEndpointStore } from "@evergreen/webhooks";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RouteScope, RouteScopeError } from "./auth";
import { registerRoute } from "./route";
import { registerConnectRoutes } from "./routes/connect";
import { registerConnectionRoutes } from "./routes/connections";
import { registerEventRoutes } from "./routes/events";
import { registerIntegrationRoutes } from "./routes/integrations";
import { registerWebhookRoutes } from "./routes/webhooks";
import {
  capturingLogger,
  OTHER_API_KEY,
  revocationTestQueue,
  SCOPED_KEYS,
  TEST_API_KEY,
  testMetrics,
  testRoute,
  testServer,
} from "./test-server";
import { TokenService } from "./token-service";

let h: RefreshHarness;
let connectionId: string;

beforeAll(async () => {
  h = await createRefreshHarness();
  connectionId = (await h.addConnection({ integrationKey: "mock" })).connection.id;
});
afterAll(() => h.close());

/** The api's routes as main.ts registers them, on the harness's database and queue. */
function apiRoutes(): ((app: FastifyInstance) => void)[] {
  return [
    (app) =>
      registerIntegrationRoutes(app, {
        prisma: h.prisma,
        keyRing: h.keyRing,
        queue: h.queues,
        log: createLogger({ name: "api-test", level: "silent" }),
        allowInsecureTokenUrls: true,
        egressPolicy: h.deps.egress.policy,
      }),
    (app) =>
      registerConnectionRoutes(app, {
        prisma: h.prisma,
        refresh: h.deps,
        tokens: new TokenService(h.deps, h.prisma, testMetrics().http),
        revocations: revocationTestQueue(app, h),
      }),
    (app) =>
      registerConnectRoutes(app, {
        prisma: h.prisma,
        refresh: h.deps,
        publicUrl: "http://127.0.0.1",
      }),
    (app) =>
      registerWebhookRoutes(app, {
        prisma: h.prisma,
        endpoints: new WebhookEndpointStore(h.prisma, h.keyRing),
        queue: createWebhookQueue(h.redis),
        allowInsecureUrls: true,
        egressPolicy: h.deps.egress.policy,
      }),
    (app) => registerEventRoutes(app, { prisma: h.prisma }),
  ];
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe("route scopes", () => {
  it("every route of the api declares its scope, and these are they", async () => {
    const declared: Record<string, RouteScope | undefined> = {};
    const app = await testServer({
      routes: [
        (instance) =>
          instance.addHook("onRoute", (route) => {
            if (route.method === "HEAD") return;
            declared[`${String(route.method)} ${route.url}`] = route.config?.scope;
          }),
        ...apiRoutes(),
      ],
    });
    await app.ready();
    const views = ["tokens:read", "connections:write"];
    expect(declared).toEqual({
      "POST /v1/integrations": "admin",
      "GET /v1/integrations": "admin",
      "GET /v1/integrations/:key": "admin",
      "DELETE /v1/integrations/:key": "admin",
      "POST /v1/connections": "connections:write",
      "GET /v1/connections": views,
      "GET /v1/connections/:id/token": "tokens:read",
      "POST /v1/connections/:id/refresh": "connections:write",
      "POST /v1/connections/:id/validate": "connections:write",
      "GET /v1/connections/:id": views,
      "DELETE /v1/connections/:id": "connections:write",
      "POST /v1/connect-sessions": "connections:write",
      "POST /v1/connections/exchange": "connections:write",
      "GET /oauth/callback": undefined,
      "POST /v1/webhooks": "admin",
      "GET /v1/webhooks": "admin",
      "GET /v1/webhooks/:id": "admin",
      "DELETE /v1/webhooks/:id": "admin",
      "POST /v1/webhooks/:id/rotate-secret": "admin",
      "GET /v1/webhooks/:id/deliveries": "admin",
      "POST /v1/webhooks/:id/deliveries/:deliveryId/retry": "admin",
      "GET /v1/events": views,
      // Public: registered after the api's routes, so the hook sees them too.
      "GET /healthz": undefined,
      "GET /readyz": undefined,
      "GET /metrics": undefined,
      "GET /openapi.json": undefined,
      "GET /docs": undefined,
    });
  });

  it.each([
    ["GET", "/v1/forgotten", undefined],
    ["POST", "/v1/forgotten", { config: {} }],
    ["GET", "/v1/typo", { config: { scope: "token:read" as ApiScope } }],
    ["GET", "/v1/none-of", { config: { scope: [] } }],
    // Fail closed beyond /v1 too: a new public route must be made public on purpose.
    ["GET", "/oauth/elsewhere", undefined],
  ] as const)(
    "refuses to build a server with %s %s, whose scope is missing or unknown",
    async (method, url, options) => {
      const register = (app: FastifyInstance) =>
        app.route({ method, url, ...options, handler: async () => ({ reached: true }) });
      await expect(testServer({ routes: [register] })).rejects.toThrow(RouteScopeError);
      await expect(testServer({ routes: [register] })).rejects.toThrow(
        `${method} ${url} declares no known scope`,
      );
    },
  );
});

describe("API key scopes", () => {
  const reader = SCOPED_KEYS["tokens:read"];
  const writer = SCOPED_KEYS["connections:write"];
  const admin = SCOPED_KEYS.admin;

  /** A representative route per scope, and a request to it that succeeds with the scope. */
  const requests = {
    "tokens:read": () => ({ method: "GET", url: `/v1/connections/${connectionId}/token` }),
    "connections:write": () => ({
      method: "POST",
      url: "/v1/connections",
      payload: { integration: "mock", externalId: "scoped", accessToken: "at-scoped" },
    }),
    admin: () => ({ method: "GET", url: "/v1/integrations" }),
  } as const;
  const scopes = Object.keys(requests) as ApiScope[];

  it.each(scopes)(
    "answers a route needing %s with 403 to a key without it, 401 to no key or an unknown one",
    async (needed) => {
      const app = await testServer({ routes: apiRoutes() });
      for (const [held, key] of Object.entries(SCOPED_KEYS)) {
        const response = await app.inject({ ...requests[needed](), headers: bearer(key) });
        if (held === needed || held === "admin") {
          expect(response.statusCode, `${held} key`).toBeLessThan(300);
        } else {
          expect(response.statusCode, `${held} key`).toBe(403);
          expect(response.json()).toEqual({
            error: "forbidden",
            message: `this key lacks the ${needed} scope`,
          });
        }
      }
      for (const headers of [{}, bearer(`${admin}x`), bearer("admin")]) {
        const response = await app.inject({ ...requests[needed](), headers });
        expect(response.statusCode).toBe(401);
        expect(response.json()).toEqual({
          error: "unauthorized",
          message: "missing or unknown API key",
        });
      }
    },
  );

  it("lets a bare key use every route", async () => {
    const app = await testServer({ routes: apiRoutes() });
    for (const key of [TEST_API_KEY, OTHER_API_KEY]) {
      for (const needed of scopes) {
        const response = await app.inject({ ...requests[needed](), headers: bearer(key) });
        expect(response.statusCode, needed).toBeLessThan(300);
      }
    }
  });

  it("shows connection views to a key that reads tokens or writes connections", async () => {
    const app = await testServer({ routes: apiRoutes() });
    for (const key of [reader, writer, admin]) {
      for (const url of ["/v1/connections", `/v1/connections/${connectionId}`]) {
        expect((await app.inject({ url, headers: bearer(key) })).statusCode).toBe(200);
      }
    }
  });

  it("writes a refusal for scope to the audit stream, naming the key and the route", async () => {
    const lines: Record<string, unknown>[] = [];
    const audit = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const app = await testServer({ routes: apiRoutes(), audit });
    const response = await app.inject({ ...requests["tokens:read"](), headers: bearer(writer) });
    expect(response.statusCode).toBe(403);
    expect(lines).toContainEqual(
      expect.objectContaining({
        kind: "security",
        event: "api_key_forbidden",
        keyName: "writer",
        route: "/v1/connections/:id/token",
      }),
    );
    expect(JSON.stringify(lines)).not.toContain(writer);
  });

  it("checks a route's scope before its input: a denied key learns nothing of the body's faults or an id", async () => {
    const app = await testServer({ routes: apiRoutes() });
    for (const request of [
      { method: "POST", url: "/v1/connections", payload: { nonsense: true } },
      { method: "DELETE", url: `/v1/connections/${crypto.randomUUID()}` },
      { method: "DELETE", url: "/v1/integrations/no-such-integration" },
    ] as const) {
      const response = await app.inject({ ...request, headers: bearer(reader) });
      expect(response.statusCode, request.url).toBe(403);
    }
  });

  it("names the key in the access line by its name, never the key", async () => {
    const { lines, log } = capturingLogger();
    const app = await testServer({
      log,
      routes: [
        (instance) =>
          registerRoute(instance, testRoute("GET", "/v1/probe", "admin"), async () => ({})),
      ],
    });
    await app.inject({ url: "/v1/probe", headers: bearer(reader) });
    await app.inject({ url: "/v1/probe", headers: bearer(admin) });
    await app.inject({ url: "/v1/probe", headers: bearer(TEST_API_KEY) });
    await app.inject({ url: "/v1/probe", headers: bearer("unknown-key-0123456789") });
    const access = lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === "request answered");
    expect(access.map(({ key, status }) => [key, status])).toEqual([
      ["reader", 403],
      ["admin", 200],
      ["key2", 200],
      [undefined, 401],
    ]);
    const text = lines.join("");
    for (const key of [reader, admin, TEST_API_KEY, "unknown-key-0123456789"]) {
      expect(text).not.toContain(key);
    }
  });
});
