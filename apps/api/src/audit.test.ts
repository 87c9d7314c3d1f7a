import { Writable } from "node:stream";
import { openRefreshToken } from "@evergreen/refresh";
import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AUTH,
  appAuthorizationCode,
  connectTestServer,
  OTHER_API_KEY,
  SCOPED_KEYS,
  TEST_API_KEY,
} from "./test-server";

const PUBLIC_URL = "https://evergreen.test";
const RETURN_URL = "https://app.example.com/connected";
const READER = { authorization: `Bearer ${SCOPED_KEYS["tokens:read"]}` };
const BAD_KEY = "not-a-key-0123456789abcdef";

let h: RefreshHarness;
let app: FastifyInstance;
/** Every line the audit stream received, as written. */
const written: string[] = [];
/** Everything a test saw that is a secret: none of it may reach the audit stream. */
const secrets = new Set<string>([
  TEST_API_KEY,
  OTHER_API_KEY,
  BAD_KEY,
  ...Object.values(SCOPED_KEYS),
]);

const lines = () => written.map((line) => JSON.parse(line) as Record<string, unknown>);
const since = (mark: number) => lines().slice(mark);

beforeAll(async () => {
  h = await createRefreshHarness();
  secrets.add(h.provider.clientSecret);
  app = await connectTestServer(h, PUBLIC_URL, {
    audit: new Writable({
      write(chunk, _encoding, done) {
        written.push(...String(chunk).split("\n").filter(Boolean));
        done();
      },
    }),
  });
});
afterAll(async () => {
  await app.close();
  await h.close();
});

const integration = (clientSecret: string) => ({
  key: "audited",
  provider: "oauth2",
  clientId: h.provider.clientId,
  clientSecret,
  tokenUrl: h.provider.tokenUrl,
  authorizationUrl: h.provider.authorizationUrl,
  scopes: ["read"],
  returnUrls: [RETURN_URL],
});

describe("audit stream", () => {
  it("records every token read: key name, connection, source IP, outcome; never the token", async () => {
    const fresh = await h.addConnection({ integrationKey: "mock" });
    const stale = await h.addConnection({ integrationKey: "mock", expiresInSeconds: -10 });
    secrets.add(fresh.grant.accessToken).add(fresh.grant.refreshToken);
    secrets.add(stale.grant.accessToken).add(stale.grant.refreshToken);
    const mark = written.length;
    const read = (id: string, headers = READER) =>
      app.inject({
        url: `/v1/connections/${id}/token`,
        headers,
        remoteAddress: "192.0.2.7",
      });

    const stored = await read(fresh.connection.id);
    expect(stored.statusCode).toBe(200);
    const refreshed = await read(stale.connection.id, AUTH);
    expect(refreshed.statusCode).toBe(200);
    secrets.add(refreshed.json<{ accessToken: string }>().accessToken);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: stale.connection.id } });
    secrets.add(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? ""));
    const missing = "00000000-0000-4000-8000-000000000000";
    expect((await read(missing)).statusCode).toBe(404);

    const route = "/v1/connections/:id/token";
    expect(since(mark)).toEqual([
      expect.objectContaining({
        audit: true,
        kind: "token_read",
        route,
        keyName: "reader",
        connectionId: fresh.connection.id,
        ip: "192.0.2.7",
        outcome: "stored",
        time: expect.any(String),
      }),
      expect.objectContaining({
        keyName: "key2",
        connectionId: stale.connection.id,
        outcome: "refreshed",
      }),
      expect.objectContaining({ keyName: "reader", connectionId: missing, outcome: "not_found" }),
    ]);
  });

  it("records the connect flow's exchanges: the app's own code and the OAuth callback", async () => {
    const created = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: AUTH,
      payload: integration(h.provider.clientSecret),
    });
    expect(created.statusCode).toBe(201);
    const mark = written.length;

    // The app's own redirect, consented to at the mock provider.
    const verifier = "v".repeat(64);
    const { code, redirectUri } = await appAuthorizationCode(h.provider, verifier);
    secrets.add(code);
    const payload = { integration: "audited", externalId: "u1", code, redirectUri };
    const exchanged = await app.inject({
      method: "POST",
      url: "/v1/connections/exchange",
      headers: AUTH,
      payload: { ...payload, codeVerifier: verifier },
    });
    expect(exchanged.statusCode).toBe(201);
    const replayed = await app.inject({
      method: "POST",
      url: "/v1/connections/exchange",
      headers: AUTH,
      payload: { ...payload, codeVerifier: verifier },
    });
    expect(replayed.statusCode).toBe(400);

    // Evergreen's own flow: a session, the user's consent, the browser at the callback.
    const session = await app.inject({
      method: "POST",
      url: "/v1/connect-sessions",
      headers: AUTH,
      payload: { integration: "audited", externalId: "u2", returnUrl: RETURN_URL },
    });
    const { url } = session.json<{ url: string }>();
    const approved = await fetch(`${url}&approve=1`, { redirect: "manual" });
    const callback = (approved.headers.get("location") ?? "").slice(PUBLIC_URL.length);
    secrets.add(new URL(callback, PUBLIC_URL).searchParams.get("code") ?? "");
    const back = await app.inject({ url: callback, remoteAddress: "198.51.100.3" });
    expect(back.statusCode).toBe(303);
    const connectionId = new URL(String(back.headers.location)).searchParams.get("connectionId");
    const forged = await app.inject({ url: "/oauth/callback?state=forged&code=x" });
    expect(forged.statusCode).toBe(400);

    expect(since(mark)).toEqual([
      expect.objectContaining({
        kind: "token_read",
        route: "/v1/connections/exchange",
        keyName: "key2",
        connectionId: exchanged.json<{ id: string }>().id,
        ip: "127.0.0.1",
        outcome: "exchanged",
      }),
      expect.objectContaining({ route: "/v1/connections/exchange", outcome: "invalid_grant" }),
      expect.objectContaining({
        route: "/oauth/callback",
        keyName: "oauth_callback",
        connectionId,
        ip: "198.51.100.3",
        outcome: "success",
      }),
      expect.objectContaining({ route: "/oauth/callback", outcome: "unknown_state" }),
    ]);
    expect(since(mark)[3]).not.toHaveProperty("connectionId");
  });

  it("records integration secret changes (not re-sends of the same one) and webhook secret events", async () => {
    const newSecret = "a-brand-new-client-secret-42";
    secrets.add(newSecret);
    const mark = written.length;
    const upsert = (clientSecret: string) =>
      app.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: { authorization: `Bearer ${SCOPED_KEYS.admin}` },
        payload: integration(clientSecret),
      });
    expect((await upsert(h.provider.clientSecret)).statusCode).toBe(200);
    expect((await upsert(newSecret)).statusCode).toBe(200);

    const endpoint = await app.inject({
      method: "POST",
      url: "/v1/webhooks",
      headers: AUTH,
      payload: { url: "https://hooks.example.com/evergreen", events: ["connection.error"] },
    });
    expect(endpoint.statusCode).toBe(201);
    const { id, secret } = endpoint.json<{ id: string; secret: string }>();
    const rotated = await app.inject({
      method: "POST",
      url: `/v1/webhooks/${id}/rotate-secret`,
      headers: AUTH,
    });
    expect(rotated.statusCode).toBe(200);
    secrets.add(secret).add(rotated.json<{ secret: string }>().secret);
    expect(
      (await app.inject({ method: "DELETE", url: `/v1/webhooks/${id}`, headers: AUTH })).statusCode,
    ).toBe(204);

    expect(since(mark)).toEqual([
      expect.objectContaining({
        kind: "security",
        event: "integration_secret_changed",
        integration: "audited",
        created: false,
        keyName: "admin",
        ip: "127.0.0.1",
      }),
      expect.objectContaining({
        event: "webhook_endpoint_created",
        endpointId: id,
        keyName: "key2",
      }),
      expect.objectContaining({ event: "webhook_secret_rotated", endpointId: id }),
      expect.objectContaining({ event: "webhook_endpoint_deleted", endpointId: id }),
    ]);
  });

  it("records rejected API keys at most once per source IP per window, counting the rest", async () => {
    const mark = written.length;
    const attempt = (ip: string) =>
      app.inject({
        url: "/v1/connections",
        headers: { authorization: `Bearer ${BAD_KEY}` },
        remoteAddress: ip,
      });
    for (let i = 0; i < 25; i += 1) expect((await attempt("203.0.113.9")).statusCode).toBe(401);
    expect(
      (await app.inject({ url: "/v1/connections", remoteAddress: "203.0.113.10" })).statusCode,
    ).toBe(401);

    expect(since(mark)).toEqual([
      expect.objectContaining({
        event: "api_key_rejected",
        ip: "203.0.113.9",
        route: "/v1/connections",
        presented: true,
        suppressed: 0,
      }),
      expect.objectContaining({ ip: "203.0.113.10", presented: false, suppressed: 0 }),
    ]);
  });

  it("never writes a secret: tokens, codes, client and webhook secrets, API keys", async () => {
    // Closing writes the held-back count of the 401 flood above.
    await app.close();
    expect(since(0).at(-1)).toMatchObject({
      event: "api_key_rejected",
      ip: "203.0.113.9",
      suppressed: 24,
    });
    const text = written.join("\n");
    expect(written.length).toBeGreaterThan(10);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8);
      expect(text).not.toContain(secret);
    }
    expect(text).not.toMatch(/mock-(at|rt)-|whsec_/);
  });
});

describe("an audit log that cannot be written (a full disk)", () => {
  it("answers a token read 503 unavailable, never the token unrecorded; what is done anyway is answered", async () => {
    const full = await connectTestServer(h, PUBLIC_URL, { audit: "/dev/full" });
    try {
      const { connection, grant } = await h.addConnection({ integrationKey: "mock" });
      const answer = await full.inject({
        url: `/v1/connections/${connection.id}/token`,
        headers: READER,
      });
      expect(answer.statusCode).toBe(503);
      expect(answer.json()).toMatchObject({ error: "unavailable" });
      expect(answer.headers["retry-after"]).toBeDefined();
      expect(answer.body).not.toContain(grant.accessToken);

      // Security events record what was done or refused anyway: the answer stands.
      const stored = await full.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: AUTH,
        payload: { ...integration(h.provider.clientSecret), key: "audited-full" },
      });
      expect(stored.statusCode).toBe(201);
      const refused = await full.inject({
        url: `/v1/connections/${connection.id}`,
        headers: { authorization: `Bearer ${BAD_KEY}` },
      });
      expect(refused.statusCode).toBe(401);

      // An exchange's connection is stored whatever the audit log does: answered as usual,
      // not with a 503 that would invite a retry of the spent code.
      const verifier = "w".repeat(64);
      const { code, redirectUri } = await appAuthorizationCode(h.provider, verifier);
      const exchanged = await full.inject({
        method: "POST",
        url: "/v1/connections/exchange",
        headers: AUTH,
        payload: {
          integration: "audited-full",
          externalId: "full-1",
          code,
          redirectUri,
          codeVerifier: verifier,
        },
      });
      expect(exchanged.statusCode).toBe(201);
    } finally {
      await full.close();
    }
  });
});
