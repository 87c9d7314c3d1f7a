import { createLogger } from "@evergreen/observability";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH, revocationTestQueue, testMetrics, testServer } from "../test-server";
import { TokenService } from "../token-service";
import { registerConnectionRoutes } from "./connections";
import { registerIntegrationRoutes } from "./integrations";

const headers = AUTH;
let h: RefreshHarness;

beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: redisDatabaseUrl(4) });
});
afterAll(() => h.close());

function server() {
  return testServer({
    routes: [
      (app) =>
        registerIntegrationRoutes(app, {
          prisma: h.prisma,
          keyRing: h.keyRing,
          queue: h.queues,
          log: createLogger({ name: "api-test", level: "silent" }),
          allowInsecureTokenUrls: "loopback",
          egressPolicy: h.deps.egress.policy,
        }),
      (app) =>
        registerConnectionRoutes(app, {
          prisma: h.prisma,
          refresh: h.deps,
          tokens: new TokenService(h.deps, h.prisma, testMetrics().http),
          revocations: revocationTestQueue(app, h),
        }),
    ],
  });
}

/** Puts integration `key` (created by the harness) on the mock provider, through the API. */
async function configure(key: string, fields: Record<string, unknown>) {
  const app = await server();
  return app.inject({
    method: "POST",
    url: "/v1/integrations",
    headers,
    payload: {
      key,
      provider: "oauth2",
      clientId: h.provider.clientId,
      clientSecret: h.provider.clientSecret,
      tokenUrl: h.provider.tokenUrl,
      ...fields,
    },
  });
}

const validate = async (id: string) =>
  (await server()).inject({ method: "POST", url: `/v1/connections/${id}/validate`, headers });

describe("POST /v1/connections/:id/validate", () => {
  it("answers valid with the provider's scope and expiry", async () => {
    const { connection } = await h.addConnection({ integrationKey: "introspected", scope: "a b" });
    const configured = await configure("introspected", {
      introspectionUrl: h.provider.introspectionUrl,
      validateIntervalSeconds: 3600,
    });
    expect(configured.json()).toMatchObject({
      introspectionUrl: h.provider.introspectionUrl,
      validateIntervalSeconds: 3600,
    });
    const response = await validate(connection.id);
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ valid: true, scope: "a b" });
    expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now());
    expect(Date.parse(body.checkedAt)).toBeLessThanOrEqual(Date.now());
  });

  it("turns a grant revoked at the provider into needs_reauth", async () => {
    const { connection, grant } = await h.addConnection({ integrationKey: "introspected" });
    h.provider.revoke(grant.accessToken);
    const response = await validate(connection.id);
    expect(response.json()).toMatchObject({ valid: false });
    const view = await (await server()).inject({
      method: "GET",
      url: `/v1/connections/${connection.id}`,
      headers,
    });
    expect(view.json()).toMatchObject({
      status: "needs_reauth",
      lastError: { code: "token_revoked" },
    });
  });

  it("is 409 validation_unsupported without a way to validate, 404 for no connection", async () => {
    const { connection } = await h.addConnection({ integrationKey: "plain" });
    const response = await validate(connection.id);
    expect(response.statusCode).toBe(409);
    expect(response.json().error).toBe("validation_unsupported");
    expect((await validate(crypto.randomUUID())).statusCode).toBe(404);
  });

  it("is 503 validation_failed when the provider gives no verdict", async () => {
    const { connection } = await h.addConnection({ integrationKey: "broken" });
    await configure("broken", { introspectionUrl: `${h.provider.url}/no-such-endpoint` });
    const response = await validate(connection.id);
    expect(response.statusCode).toBe(503);
    expect(response.json().error).toBe("validation_failed");
    expect(response.headers["retry-after"]).toBe("30");
  });
});

describe("integration validation settings", () => {
  it("refuse an introspection URL without https, and intervals under a minute", async () => {
    const insecure = await configure("introspected", {
      introspectionUrl: "http://idp.example/introspect",
    });
    expect(insecure.statusCode).toBe(400);
    expect(insecure.json().message).toMatch(/^introspectionUrl: .*https/);
    const often = await configure("introspected", { validateIntervalSeconds: 59 });
    expect(often.statusCode).toBe(400);
    expect(often.json().message).toMatch(/^validateIntervalSeconds/);
  });
});
