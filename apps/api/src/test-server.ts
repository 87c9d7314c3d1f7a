// Test helper: the api's HTTP server with silent logs, fixed keys and the given routes.
import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import { fields } from "@evergreen/config";
import {
  type AuditDestination,
  createAuditLog,
  createHttpMetrics,
  createLogger,
  createMetrics,
  type Logger,
  type ReadinessCheck,
} from "@evergreen/observability";
import { createRevocationQueue } from "@evergreen/refresh";
import type { RefreshHarness } from "@evergreen/refresh/testing";
import { createWebhookQueue, WebhookEndpointStore } from "@evergreen/webhooks";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { auditLineLost } from "./audit-lines";
import type { RouteScope } from "./auth";
import { defineRoute, errorBody, type RouteDeclaration } from "./route";
import { registerConnectRoutes } from "./routes/connect";
import { registerConnectionRoutes } from "./routes/connections";
import { registerEventRoutes } from "./routes/events";
import { registerIntegrationRoutes } from "./routes/integrations";
import { registerWebhookRoutes } from "./routes/webhooks";
import { buildServer } from "./server";
import { TokenService } from "./token-service";

export const TEST_API_KEY = "test-key-0123456789abcdef";
/** A second accepted key, so tests can show that any configured key works. */
export const OTHER_API_KEY = "another-key-0123456789";
export const AUTH = { authorization: `Bearer ${TEST_API_KEY}` };
/** Keys holding one scope each, named after it. */
export const SCOPED_KEYS = {
  "tokens:read": "reader-key-0123456789",
  "connections:write": "writer-key-0123456789",
  admin: "admin-key-0123456789",
} as const;
/** API_KEYS as the api parses it: the two bare keys (key1, key2) and the scoped ones. */
export const TEST_API_KEYS = fields.apiKeys.parse(
  [
    OTHER_API_KEY,
    TEST_API_KEY,
    `reader:${SCOPED_KEYS["tokens:read"]}:tokens:read`,
    `writer:${SCOPED_KEYS["connections:write"]}:connections:write`,
    `admin:${SCOPED_KEYS.admin}:admin`,
  ].join(","),
);

/**
 * A route for tests of the server itself (keys, errors, limits), declared as every route
 * must be: any query string (ignored), no body, no documented answer.
 */
export function testRoute(
  method: RouteDeclaration["method"],
  url: string,
  scope: RouteScope = "tokens:read",
) {
  return defineRoute({
    method,
    url,
    scope,
    tag: "test",
    summary: "a test route",
    query: z.looseObject({}),
    responses: {},
  });
}

/** A registry with the api's metrics, as main.ts builds it. */
export function testMetrics() {
  const { registry } = createMetrics({ version: "test" });
  return { registry, http: createHttpMetrics(registry) };
}

/**
 * Checks every JSON answer of a declared route against what its declaration documents:
 * a success status it does not list, or a body its schema refuses, fails the request with
 * a 500 naming the mismatch, so every api test also checks the OpenAPI document's answers.
 * Errors are checked against the shared error shape. Test routes (no answers) are skipped.
 */
function checkDeclaredAnswers(app: FastifyInstance): void {
  app.addHook("preSerialization", async (request, reply, payload) => {
    const declaration = request.routeOptions.config.declaration;
    if (!declaration || Object.keys(declaration.responses).length === 0) return payload;
    const status = reply.statusCode;
    const spec = declaration.responses[status];
    const schema =
      spec instanceof z.ZodType ? spec : (spec?.schema ?? (status >= 400 ? errorBody : undefined));
    if (!spec && status < 400) {
      throw new Error(
        `${declaration.method} ${declaration.url} answered ${status}, which it does not declare`,
      );
    }
    const checked = schema?.safeParse(payload);
    if (checked && !checked.success) {
      throw new Error(
        `${declaration.method} ${declaration.url} answered ${status} off its schema: ${checked.error.message}`,
      );
    }
    return payload;
  });
}

export async function testServer(
  options: {
    readonly routes?: readonly ((app: FastifyInstance) => void)[];
    readonly checks?: Readonly<Record<string, ReadinessCheck>>;
    readonly bodyLingerMs?: number;
    /** @defaultValue silent */
    readonly log?: Logger;
    /** @defaultValue fresh ones */
    readonly metrics?: ReturnType<typeof testMetrics>;
    /** Where the audit stream goes, e.g. a stream a test reads. @defaultValue nowhere */
    readonly audit?: AuditDestination;
  } = {},
) {
  const { registry, http } = options.metrics ?? testMetrics();
  const log = options.log ?? createLogger({ name: "api-test", level: "silent" });
  const app = await buildServer({
    log,
    audit: createAuditLog({
      name: "api-test",
      destination: options.audit ?? discard(),
      onWriteError: auditLineLost(log),
    }),
    apiKeys: TEST_API_KEYS,
    ops: { registry, checks: options.checks ?? {} },
    metrics: http,
    routes: options.routes ?? [],
    ...(options.bodyLingerMs === undefined ? {} : { bodyLingerMs: options.bodyLingerMs }),
  });
  checkDeclaredAnswers(app);
  return app;
}

/** A destination that drops every line: tests that do not read the audit stream. */
function discard() {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

/** A revocation queue under the harness's prefix, so that closing the harness deletes its keys. */
export function revocationTestQueue(app: FastifyInstance, h: RefreshHarness) {
  const queue = createRevocationQueue(h.redis, `${h.prefix}:revocations`);
  app.addHook("onClose", () => queue.close());
  return queue;
}

/** The connection routes on a refresh harness's database, queue, lock and mock provider. */
export function connectionsTestServer(h: RefreshHarness, queue = h.queues, deps = h.deps) {
  const metrics = testMetrics();
  return testServer({
    metrics,
    routes: [
      (app) =>
        registerConnectionRoutes(app, {
          prisma: h.prisma,
          refresh: { ...deps, queue },
          tokens: new TokenService(deps, h.prisma, metrics.http),
          revocations: revocationTestQueue(app, h),
        }),
    ],
  });
}

/**
 * Every route of the api on a refresh harness, with `publicUrl` as PUBLIC_URL: integrations,
 * connections, the connect flow, webhooks and events. Integrations and webhook endpoints
 * may name http:// loopback URLs (the mock provider's, a test receiver's).
 */
export function connectTestServer(
  h: RefreshHarness,
  publicUrl: string,
  options: {
    /** Registered first, e.g. an onRoute hook that sees every route. */
    readonly before?: readonly ((app: FastifyInstance) => void)[];
    readonly audit?: AuditDestination;
  } = {},
) {
  const metrics = testMetrics();
  const { before = [], audit } = options;
  return testServer({
    metrics,
    ...(audit === undefined ? {} : { audit }),
    routes: [
      ...before,
      (app) =>
        registerIntegrationRoutes(app, {
          prisma: h.prisma,
          keyRing: h.keyRing,
          queue: h.queues,
          log: h.deps.log,
          allowInsecureTokenUrls: true,
          egressPolicy: h.deps.egress.policy,
        }),
      (app) =>
        registerConnectionRoutes(app, {
          prisma: h.prisma,
          refresh: h.deps,
          tokens: new TokenService(h.deps, h.prisma, metrics.http),
          revocations: revocationTestQueue(app, h),
        }),
      (app) => registerConnectRoutes(app, { prisma: h.prisma, refresh: h.deps, publicUrl }),
      (app) => {
        // Under the harness's prefix, so that closing the harness deletes its keys.
        const queue = createWebhookQueue(h.redis, `${h.prefix}:webhooks`);
        app.addHook("onClose", () => queue.close());
        registerWebhookRoutes(app, {
          prisma: h.prisma,
          endpoints: new WebhookEndpointStore(h.prisma, h.keyRing),
          queue,
          allowInsecureUrls: true,
          egressPolicy: h.deps.egress.policy,
        });
      },
      (app) => registerEventRoutes(app, { prisma: h.prisma }),
    ],
  });
}

/** A logger whose JSON lines land in `lines`. */
export function capturingLogger() {
  const lines: string[] = [];
  const log = createLogger(
    { name: "api-test" },
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  return { lines, log };
}

/**
 * An app's own authorization request (PKCE S256 with `verifier`), consented to at the mock
 * provider: the code its redirect carries, for POST /v1/connections/exchange.
 */
export async function appAuthorizationCode(
  provider: RefreshHarness["provider"],
  verifier: string,
): Promise<{ code: string; redirectUri: string }> {
  const redirectUri = "https://app.example.com/oauth/cb";
  const query = new URLSearchParams({
    response_type: "code",
    client_id: provider.clientId,
    redirect_uri: redirectUri,
    state: "app-state",
    code_challenge: createHash("sha256").update(verifier).digest("base64url"),
    code_challenge_method: "S256",
    approve: "1",
  });
  const answer = await fetch(`${provider.authorizationUrl}?${query}`, { redirect: "manual" });
  const code = new URL(answer.headers.get("location") ?? "").searchParams.get("code") ?? "";
  return { code, redirectUri };
}
