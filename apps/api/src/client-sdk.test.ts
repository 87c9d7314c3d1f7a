import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  EvergreenClient,
  ForbiddenError,
  IntegrationError,
  InvalidRequestError,
  NeedsReauthError,
  NotFoundError,
  RetryLaterError,
  UnauthorizedError,
  UnreachableError,
} from "@evergreen/client";
import { useEvergreenToken } from "@evergreen/client/axios";
import { createLogger } from "@evergreen/observability";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { createWebhookQueue, OutboxDispatcher } from "@evergreen/webhooks";
import axios from "axios";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { connectTestServer, SCOPED_KEYS, TEST_API_KEY } from "./test-server";

/**
 * @evergreen/client against this api, listening on loopback, and the mock provider: the
 * SDK's calls are counted at its fetch, the provider API's 401s come from a real server.
 */
let h: RefreshHarness;
let app: FastifyInstance;
let baseUrl: string;
/** `METHOD /path` of every call the SDK made to the api, in order. */
let apiCalls: string[];
/** Called with each of them as it is made. */
let onApiCall: (call: string) => void;

const countingFetch: typeof fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const call = `${init?.method ?? "GET"} ${url.pathname}`;
  apiCalls.push(call);
  onApiCall(call);
  return fetch(input, init);
};

const client = (apiKey = TEST_API_KEY) =>
  new EvergreenClient({ baseUrl, apiKey, fetch: countingFetch });

/**
 * The provider's API: 200 for a token the mock provider issued and that is not refused
 * here, 401 otherwise; records the token of every request.
 */
const providerApi = {
  server: undefined as Server | undefined,
  url: "",
  refused: new Set<string>(),
  refuseAll: false,
  seen: [] as string[],
};

beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: redisDatabaseUrl(15) });
  app = await connectTestServer(h, "https://evergreen.test");
  await app.listen({ port: 0, host: "127.0.0.1" });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  providerApi.server = createServer((req, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
    providerApi.seen.push(token);
    const ok =
      !providerApi.refuseAll &&
      !providerApi.refused.has(token) &&
      h.provider.isAccessTokenValid(token);
    res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
    res.end(JSON.stringify(ok ? { name: "Ada" } : { error: "invalid_token" }));
  });
  providerApi.server.listen(0, "127.0.0.1");
  await new Promise((resolve) => providerApi.server?.once("listening", resolve));
  providerApi.url = `http://127.0.0.1:${(providerApi.server.address() as AddressInfo).port}/me`;
});
afterAll(async () => {
  providerApi.server?.close();
  await app.close();
  await h.close();
});
beforeEach(() => {
  apiCalls = [];
  onApiCall = () => {};
  providerApi.refused.clear();
  providerApi.refuseAll = false;
  providerApi.seen = [];
});

const tokenCalls = () => apiCalls.filter((call) => call.endsWith("/token"));
const refreshCalls = () => apiCalls.filter((call) => call.endsWith("/refresh"));

describe("@evergreen/client: typed errors", () => {
  it("throws NeedsReauthError when the grant is dead", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: -60 });
    h.provider.revoke(grant.refreshToken);
    const error = await client()
      .getToken(connection.id)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NeedsReauthError);
    expect(error).toMatchObject({ status: 409, code: "needs_reauth" });
  });

  it("throws IntegrationError when the provider refuses the client", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: -60 });
    h.provider.failNext(1, { status: 401, error: "invalid_client" }, { grantId: grant.grantId });
    const error = await client()
      .getToken(connection.id)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrationError);
    expect(error).toMatchObject({ status: 409, code: "integration_error" });
  });

  it("throws RetryLaterError with Retry-After in seconds when a refresh fails transiently", async () => {
    // An integration of its own: a 429 cools down every connection of the integration.
    const { connection, grant } = await h.addConnection({
      expiresInSeconds: -60,
      integrationKey: "rate-limited",
    });
    h.provider.failNext(
      1,
      { status: 429, error: "slow_down", retryAfter: "120" },
      { grantId: grant.grantId },
    );
    const error = await client()
      .getToken(connection.id)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryLaterError);
    expect(error).toMatchObject({ status: 503, code: "refresh_failed" });
    const { retryAfter } = error as RetryLaterError;
    expect(retryAfter).toBeGreaterThan(100);
    expect(retryAfter).toBeLessThanOrEqual(120);
  });

  it("maps 400, 401, 403 and 404 to their classes, with the api's message", async () => {
    const unknownField = await client()
      .upsertConnection({
        integration: "mock",
        externalId: "x",
        accessToken: "t",
        extra: 1,
      } as never)
      .catch((e: unknown) => e);
    expect(unknownField).toBeInstanceOf(InvalidRequestError);
    expect(unknownField).toMatchObject({ message: "extra: unknown field" });
    await expect(client("not-a-key").listConnections()).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(client(SCOPED_KEYS["tokens:read"]).listIntegrations()).rejects.toBeInstanceOf(
      ForbiddenError,
    );
    await expect(client().getConnection(crypto.randomUUID())).rejects.toBeInstanceOf(NotFoundError);
  });

  it("throws UnreachableError, a RetryLaterError, when the api cannot be reached or does not answer", async () => {
    // A port nothing listens on, and a server that never answers.
    const refused = new EvergreenClient({ baseUrl: "http://127.0.0.1:1", apiKey: TEST_API_KEY });
    const error = await refused.listConnections().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnreachableError);
    expect(error).toBeInstanceOf(RetryLaterError);
    expect(error).toMatchObject({ status: 0, code: "unreachable", retryAfter: undefined });
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const slow = new EvergreenClient({
        baseUrl: `http://127.0.0.1:${port}`,
        apiKey: TEST_API_KEY,
        timeoutMs: 200,
      });
      await expect(slow.listConnections()).rejects.toMatchObject({
        name: "UnreachableError",
        message: "GET /v1/connections: no answer within 200 ms",
      });
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("calls the routes with their documented shapes", async () => {
    const sdk = client();
    const connection = await sdk.upsertConnection({
      integration: "mock",
      externalId: `sdk-${crypto.randomUUID()}`,
      accessToken: h.provider.issueGrant().accessToken,
      expiresIn: 3600,
    });
    expect(connection.status).toBe("active");
    expect(await sdk.getConnection(connection.id)).toEqual(connection);
    const page = await sdk.listConnections({ externalId: connection.externalId });
    expect(page.data.map(({ id }) => id)).toEqual([connection.id]);
    expect((await sdk.getIntegration("mock")).key).toBe("mock");
    await sdk.deleteConnection(connection.id);
    await expect(sdk.getConnection(connection.id)).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("@evergreen/client: webhooks and events", () => {
  it("manages an endpoint: the secret only on create and rotate", async () => {
    const sdk = client();
    const created = await sdk.createWebhook({
      url: "https://hooks.example.com/sdk",
      events: ["connection.created", "connection.needs_reauth"],
    });
    expect(created.secret).toMatch(/^whsec_/);
    const { secret, ...webhook } = created;
    expect(await sdk.getWebhook(created.id)).toEqual(webhook);
    expect((await sdk.listWebhooks()).map(({ id }) => id)).toContain(created.id);
    const rotated = await sdk.rotateWebhookSecret(created.id);
    expect(rotated.id).toBe(created.id);
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(secret);
    await expect(
      client(SCOPED_KEYS["connections:write"]).createWebhook({
        url: "https://hooks.example.com/denied",
        events: ["connection.created"],
      }),
    ).rejects.toBeInstanceOf(ForbiddenError);
    await sdk.deleteWebhook(created.id);
    await expect(sdk.getWebhook(created.id)).rejects.toBeInstanceOf(NotFoundError);
    expect(apiCalls).toContain(`POST /v1/webhooks/${created.id}/rotate-secret`);
  });

  it("reads an event in the feed and its delivery, and retries the delivery", async () => {
    const sdk = client();
    const webhook = await sdk.createWebhook({
      url: "https://hooks.example.com/feed",
      events: ["connection.created"],
    });
    const connection = await sdk.upsertConnection({
      integration: "mock",
      externalId: `sdk-feed-${crypto.randomUUID()}`,
      accessToken: h.provider.issueGrant().accessToken,
    });
    // A key that only reads tokens may read the feed. The feed waits for every write
    // transaction of the PostgreSQL server to end (other test runs share it): poll.
    const reader = client(SCOPED_KEYS["tokens:read"]);
    await expect
      .poll(async () => (await reader.listEvents({ connection: connection.id })).data)
      .toHaveLength(1);
    const page = await reader.listEvents({ connection: connection.id });
    const [event] = page.data;
    expect(event).toMatchObject({
      type: "connection.created",
      data: { connectionId: connection.id, status: "active", error: null },
    });
    expect(page.hasMore).toBe(false);
    expect(
      await reader.listEvents({ connection: connection.id, after: page.nextCursor ?? "" }),
    ).toEqual({ data: [], nextCursor: page.nextCursor, hasMore: false });

    const queue = createWebhookQueue(h.redis, `${h.prefix}:webhooks`);
    try {
      await new OutboxDispatcher({
        prisma: h.prisma,
        queue,
        log: createLogger({ name: "test", level: "silent" }),
      }).dispatchOnce();
    } finally {
      await queue.close();
    }
    const deliveries = await sdk.listWebhookDeliveries(webhook.id, { limit: 100 });
    const delivery = deliveries.data.find(({ eventId }) => eventId === event?.id);
    expect(delivery).toMatchObject({ eventType: "connection.created", status: "pending" });
    const retried = await sdk.retryWebhookDelivery(webhook.id, delivery?.id ?? "");
    expect(retried).toMatchObject({ id: delivery?.id, status: "pending" });
    await expect(sdk.retryWebhookDelivery(webhook.id, crypto.randomUUID())).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });
});

describe("@evergreen/client: getAccessToken", () => {
  it("asks the api once for 20 concurrent callers, then answers from its cache", async () => {
    const { connection } = await h.addConnection();
    const sdk = client();
    const tokens = await Promise.all(
      Array.from({ length: 20 }, () => sdk.getAccessToken(connection.id)),
    );
    expect(new Set(tokens.map(({ accessToken }) => accessToken)).size).toBe(1);
    expect(tokenCalls()).toHaveLength(1);
    await sdk.getAccessToken(connection.id, { minValidity: 600 });
    expect(tokenCalls()).toHaveLength(1);
  });

  it("asks again when the cached token is valid for less than minValidity", async () => {
    const { connection } = await h.addConnection({ expiresInSeconds: 120 });
    const sdk = client();
    await sdk.getAccessToken(connection.id, { minValidity: 60 });
    await sdk.getAccessToken(connection.id, { minValidity: 60 });
    expect(tokenCalls()).toHaveLength(1);
    // 120 s left is less than 300: the cache cannot serve it, the api refreshes.
    const fresh = await sdk.getAccessToken(connection.id, { minValidity: 300 });
    expect(tokenCalls()).toHaveLength(2);
    expect(Date.parse(fresh.expiresAt ?? "") - Date.now()).toBeGreaterThan(300_000);
  });
});

/** A connection whose current access token the provider's API now refuses. */
async function refusedConnection() {
  const { connection, grant } = await h.addConnection();
  providerApi.refused.add(grant.accessToken);
  return { connection, grant };
}

describe("@evergreen/client: fetchFor", () => {
  it("refreshes once for five concurrent 401s and retries each call once with the new token", async () => {
    const { connection, grant } = await refusedConnection();
    const api = client().fetchFor(connection.id);
    const answers = await Promise.all(Array.from({ length: 5 }, () => api(providerApi.url)));
    expect(answers.map(({ status }) => status)).toEqual([200, 200, 200, 200, 200]);
    expect(refreshCalls()).toHaveLength(1);
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
    const fresh = h.provider.grant(grant.grantId)?.accessToken;
    expect(providerApi.seen).toEqual([
      ...Array(5).fill(grant.accessToken),
      ...Array(5).fill(fresh),
    ]);
  });

  it("holds calls made during the refresh until it ends, instead of sending the refused token", async () => {
    const { connection, grant } = await refusedConnection();
    const api = client().fetchFor(connection.id);
    let during: Promise<Response> | undefined;
    onApiCall = (call) => {
      if (call.endsWith("/refresh")) during = api(providerApi.url);
    };
    expect((await api(providerApi.url)).status).toBe(200);
    expect((await during)?.status).toBe(200);
    expect(refreshCalls()).toHaveLength(1);
    const fresh = h.provider.grant(grant.grantId)?.accessToken;
    expect(providerApi.seen).toEqual([grant.accessToken, fresh, fresh]);
  });

  it("gives the second 401 back rather than refresh again", async () => {
    const { connection } = await h.addConnection();
    providerApi.refuseAll = true;
    const answer = await client().fetchFor(connection.id)(providerApi.url, {
      headers: { accept: "application/json" },
    });
    expect(answer.status).toBe(401);
    expect(refreshCalls()).toHaveLength(1);
    expect(providerApi.seen).toHaveLength(2);
  });

  it("surfaces NeedsReauthError when the forced refresh finds the grant dead", async () => {
    const { connection, grant } = await refusedConnection();
    h.provider.revoke(grant.refreshToken);
    const api = client().fetchFor(connection.id);
    await expect(api(providerApi.url)).rejects.toBeInstanceOf(NeedsReauthError);
  });
});

describe("@evergreen/client/axios: useEvergreenToken", () => {
  it("attaches the token, and shares one refresh among concurrent 401s", async () => {
    const { connection, grant } = await refusedConnection();
    const instance = axios.create();
    const eject = useEvergreenToken(instance, client(), connection.id);
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => instance.get<{ name: string }>(providerApi.url)),
    );
    expect(answers.map(({ status, data }) => [status, data.name])).toEqual(
      Array(5).fill([200, "Ada"]),
    );
    expect(refreshCalls()).toHaveLength(1);
    expect(tokenCalls()).toHaveLength(2);
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
    eject();
    await expect(instance.get(providerApi.url)).rejects.toMatchObject({ status: 401 });
  });

  it("rejects with the second 401 after one retry", async () => {
    const { connection } = await h.addConnection();
    providerApi.refuseAll = true;
    const instance = axios.create();
    useEvergreenToken(instance, client(), connection.id);
    await expect(instance.get(providerApi.url)).rejects.toMatchObject({ status: 401 });
    expect(refreshCalls()).toHaveLength(1);
    expect(providerApi.seen).toHaveLength(2);
  });
});
