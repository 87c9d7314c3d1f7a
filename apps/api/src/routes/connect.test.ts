import { createHash } from "node:crypto";
import { startMockProvider } from "@evergreen/providers/testing";
import {
  createConnectSession,
  openRefreshToken,
  sealCodeVerifier,
  UnknownIntegrationError,
} from "@evergreen/refresh";
import {
  changedAfterRead,
  createRefreshHarness,
  type RefreshHarness,
} from "@evergreen/refresh/testing";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH, appAuthorizationCode, connectTestServer } from "../test-server";

/**
 * Never listened on: the tests carry the browser's part by hand, from the api's answer to
 * the mock provider's consent page and back to the api's callback, as a browser would.
 */
const PUBLIC_URL = "https://evergreen.test";
const RETURN_URL = "https://app.example.com/connected";

let h: RefreshHarness;
let app: FastifyInstance;

beforeAll(async () => {
  h = await createRefreshHarness();
  app = await connectTestServer(h, PUBLIC_URL);
  const integration = await app.inject({
    method: "POST",
    url: "/v1/integrations",
    headers: AUTH,
    payload: {
      key: "mock",
      provider: "oauth2",
      clientId: h.provider.clientId,
      clientSecret: h.provider.clientSecret,
      tokenUrl: h.provider.tokenUrl,
      authorizationUrl: h.provider.authorizationUrl,
      scopes: ["read"],
      returnUrls: [RETURN_URL],
    },
  });
  expect(integration.statusCode).toBe(201);
});
afterAll(async () => {
  await app.close();
  await h.close();
});

let users = 0;
/** A fresh externalId per test: each flow connects its own user. */
const newUser = () => `user-${++users}`;

async function startSession(payload: Record<string, unknown>) {
  return app.inject({ method: "POST", url: "/v1/connect-sessions", headers: AUTH, payload });
}

/** Starts a session and returns its authorization URL and state. */
async function authorizationUrl(externalId: string, extra: Record<string, unknown> = {}) {
  const response = await startSession({
    integration: "mock",
    externalId,
    returnUrl: RETURN_URL,
    ...extra,
  });
  expect(response.statusCode).toBe(201);
  const { url } = response.json<{ url: string }>();
  return { url, state: new URL(url).searchParams.get("state") ?? "" };
}

/**
 * The user's choice on the provider's consent page; returns the path and query of the
 * api's callback that the provider redirected to.
 */
async function consent(url: string, choice: "approve" | "deny"): Promise<string> {
  const page = await fetch(url);
  expect(page.status).toBe(200);
  const answer = await fetch(`${url}&${choice}=1`, { redirect: "manual" });
  expect(answer.status).toBe(302);
  const location = answer.headers.get("location") ?? "";
  expect(location.startsWith(`${PUBLIC_URL}/oauth/callback?`)).toBe(true);
  return location.slice(PUBLIC_URL.length);
}

/** The browser following the provider's redirect: no API key. */
async function callback(pathAndQuery: string, headers: Record<string, string> = {}) {
  return app.inject({ method: "GET", url: pathAndQuery, headers });
}

function redirectedTo(response: Awaited<ReturnType<typeof callback>>) {
  expect(response.statusCode).toBe(303);
  const location = new URL(String(response.headers.location));
  return { location, params: Object.fromEntries(location.searchParams) };
}

/** Every request the mock provider has received: an exchange would add one. */
const providerRequests = () => h.provider.requests;

describe("connect flow", () => {
  it("connects a user: consent, callback, 303 to the return URL, and a connection whose token works", async () => {
    const externalId = newUser();
    const started = await startSession({
      integration: "mock",
      externalId,
      returnUrl: `${RETURN_URL}?tab=accounts`,
      metadata: { plan: "pro" },
    });
    expect(started.statusCode).toBe(201);
    expect(started.headers["cache-control"]).toBe("no-store");
    const { url, expiresAt } = started.json<{ url: string; expiresAt: string }>();
    const minutes = (Date.parse(expiresAt) - Date.now()) / 60_000;
    expect(minutes).toBeGreaterThan(9);
    expect(minutes).toBeLessThanOrEqual(10);
    const query = Object.fromEntries(new URL(url).searchParams);
    expect(url.startsWith(`${h.provider.authorizationUrl}?`)).toBe(true);
    expect(query).toMatchObject({
      response_type: "code",
      client_id: h.provider.clientId,
      redirect_uri: `${PUBLIC_URL}/oauth/callback`,
      scope: "read",
      code_challenge_method: "S256",
    });
    expect(Buffer.from(query.state ?? "", "base64url")).toHaveLength(32);

    const response = await callback(await consent(url, "approve"));
    expect(response.headers["referrer-policy"]).toBe("no-referrer");
    const { location, params } = redirectedTo(response);
    expect(`${location.origin}${location.pathname}`).toBe(RETURN_URL);
    expect(params).toEqual({
      tab: "accounts",
      connectionId: expect.any(String),
      status: "success",
    });
    expect(location.toString()).not.toMatch(/mock-(at|rt)-/);

    const view = await app.inject({
      method: "GET",
      url: `/v1/connections/${params.connectionId}`,
      headers: AUTH,
    });
    expect(view.json()).toMatchObject({
      integration: "mock",
      externalId,
      status: "active",
      metadata: { plan: "pro" },
    });
    const token = await app.inject({
      method: "GET",
      url: `/v1/connections/${params.connectionId}/token`,
      headers: AUTH,
    });
    expect(token.statusCode).toBe(200);
    const { accessToken, scope } = token.json<{ accessToken: string; scope: string }>();
    expect(h.provider.isAccessTokenValid(accessToken)).toBe(true);
    expect(scope).toBe("read");
    const row = await h.prisma.connection.findUniqueOrThrow({
      where: { id: params.connectionId },
    });
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toMatch(/^mock-rt-/);

    // The session is spent, and stored neither its state nor its verifier in clear.
    const session = await h.prisma.connectSession.findFirstOrThrow({ where: { externalId } });
    expect(session.consumedAt).not.toBeNull();
    expect(session.stateHash).toBe(
      createHash("sha256")
        .update(query.state ?? "")
        .digest("base64url"),
    );
    expect(session.codeVerifier).toMatch(/^ev1\./);
  });

  it("refuses a replayed state: error=invalid_state, and no second exchange", async () => {
    const { url } = await authorizationUrl(newUser());
    const returned = await consent(url, "approve");
    expect(redirectedTo(await callback(returned)).params.status).toBe("success");
    const before = providerRequests();
    const replay = redirectedTo(await callback(returned)).params;
    expect(replay).toEqual({ error: "invalid_state" });
    expect(providerRequests()).toBe(before);
  });

  it("answers HEAD at the callback with 404, leaving the state for the browser's GET", async () => {
    // Link scanners and previewers probe URLs with HEAD; Fastify would run the GET handler.
    const { url } = await authorizationUrl(newUser());
    const returned = await consent(url, "approve");
    const before = providerRequests();
    expect((await app.inject({ method: "HEAD", url: returned })).statusCode).toBe(404);
    expect(providerRequests()).toBe(before);
    expect(redirectedTo(await callback(returned)).params.status).toBe("success");
  });

  it("lets one of two simultaneous callbacks with one state through", async () => {
    const { url } = await authorizationUrl(newUser());
    const returned = await consent(url, "approve");
    const results = await Promise.all([callback(returned), callback(returned)]);
    const outcomes = results.map((response) => redirectedTo(response).params);
    expect(outcomes.map((params) => params.status ?? params.error).sort()).toEqual([
      "invalid_state",
      "success",
    ]);
  });

  it("sends an expired session back with error=expired_state, exchanging nothing", async () => {
    const externalId = newUser();
    const { url } = await authorizationUrl(externalId);
    await h.prisma.connectSession.updateMany({
      where: { externalId },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    const returned = await consent(url, "approve");
    const before = providerRequests();
    expect(redirectedTo(await callback(returned)).params).toEqual({ error: "expired_state" });
    expect(providerRequests()).toBe(before);
    expect(await h.prisma.connection.findFirst({ where: { externalId } })).toBeNull();
  });

  it("answers a state no session has with a 400 page, never a redirect, and needs no API key", async () => {
    const forged = await callback("/oauth/callback?state=made-up&code=abc");
    expect(forged.statusCode).toBe(400);
    expect(forged.headers.location).toBeUndefined();
    expect(forged.json()).toMatchObject({ error: "invalid_state" });
    const html = await callback("/oauth/callback?state=made-up", { accept: "text/html" });
    expect(html.statusCode).toBe(400);
    expect(html.headers["content-type"]).toMatch(/^text\/html/);
    expect(html.body).not.toMatch(/at .*\.ts/);
    for (const path of [
      "/oauth/callback",
      "/oauth/callback?state=a&state=b",
      "/oauth/callback?code=x",
    ]) {
      expect((await callback(path)).statusCode, path).toBe(400);
    }
  });

  it("sends nobody to a return URL the integration took off its list since the session began", async () => {
    const integration = (returnUrls: string[]) =>
      app.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: AUTH,
        payload: {
          key: "moving",
          provider: "oauth2",
          clientId: h.provider.clientId,
          clientSecret: h.provider.clientSecret,
          tokenUrl: h.provider.tokenUrl,
          authorizationUrl: h.provider.authorizationUrl,
          returnUrls,
        },
      });
    expect((await integration([RETURN_URL])).statusCode).toBe(201);
    const externalId = newUser();
    const { url } = await authorizationUrl(externalId, { integration: "moving" });
    const returned = await consent(url, "approve");
    expect((await integration(["https://new.example.com"])).statusCode).toBe(200);
    const before = providerRequests();
    const answer = await callback(returned);
    expect(answer.statusCode).toBe(400);
    expect(answer.headers.location).toBeUndefined();
    expect(answer.json()).toMatchObject({ error: "invalid_state" });
    expect(providerRequests()).toBe(before);
    expect(await h.prisma.connection.findFirst({ where: { externalId } })).toBeNull();
    // Replayed: the session is used up, and still nobody is sent there.
    expect((await callback(returned)).statusCode).toBe(400);
  });

  it("fails the exchange for a wrong PKCE verifier: error=invalid_grant, no connection", async () => {
    const externalId = newUser();
    const { url } = await authorizationUrl(externalId);
    const session = await h.prisma.connectSession.findFirstOrThrow({ where: { externalId } });
    await h.prisma.connectSession.update({
      where: { id: session.id },
      data: { codeVerifier: sealCodeVerifier(h.keyRing, session.id, "x".repeat(43)) },
    });
    const response = await callback(await consent(url, "approve"));
    expect(redirectedTo(response).params).toEqual({ error: "invalid_grant" });
    expect(await h.prisma.connection.findFirst({ where: { externalId } })).toBeNull();
  });

  it("refuses a return URL off the allowlist, and an unknown integration, with a 400 naming the field", async () => {
    for (const returnUrl of [
      "https://evil.example/connected",
      "https://app.example.com.evil.example/connected",
      "https://app.example.com/connected-elsewhere",
      "http://app.example.com/connected",
      "javascript:alert(1)",
    ]) {
      const response = await startSession({ integration: "mock", externalId: "u", returnUrl });
      expect(response.statusCode, returnUrl).toBe(400);
      expect(response.json()).toEqual({
        error: "invalid_request",
        message: "returnUrl: not in the integration's returnUrls",
      });
    }
    const unknown = await startSession({
      integration: "nope",
      externalId: "u",
      returnUrl: RETURN_URL,
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().message).toMatch(/^integration: /);
    const extra = await startSession({
      integration: "mock",
      externalId: "u",
      returnUrl: RETURN_URL,
      redirectUri: "https://evil.example/cb",
    });
    expect(extra.json().message).toBe("redirectUri: unknown field");
  });

  it("sends the provider's denial to the return URL as error=access_denied", async () => {
    const externalId = newUser();
    const { url } = await authorizationUrl(externalId);
    const response = await callback(await consent(url, "deny"));
    expect(redirectedTo(response).params).toEqual({ error: "access_denied" });
    expect(await h.prisma.connection.findFirst({ where: { externalId } })).toBeNull();
  });

  it("passes on only the provider errors RFC 6749 defines; any other is provider_error", async () => {
    const { state } = await authorizationUrl(newUser());
    const query = new URLSearchParams({ state, error: "<script>x</script>" });
    const response = await callback(`/oauth/callback?${query}`);
    expect(redirectedTo(response).params).toEqual({ error: "provider_error" });
  });

  it.each([
    ["a code sent twice", (state: string) => `state=${state}&code=a&code=b`, "invalid_request"],
    [
      "a code too long",
      (state: string) => `state=${state}&code=${"c".repeat(5000)}`,
      "invalid_request",
    ],
    [
      "an error too long",
      (state: string) => `state=${state}&error=${"e".repeat(3000)}`,
      "provider_error",
    ],
  ])(
    "sends a live session's user back to the app for %s, exchanging nothing",
    async (_, query, error) => {
      const { state } = await authorizationUrl(newUser());
      const before = providerRequests();
      const response = await callback(`/oauth/callback?${query(encodeURIComponent(state))}`);
      expect(redirectedTo(response).params).toEqual({ error });
      expect(providerRequests()).toBe(before);
    },
  );

  it("answers 409 integration_error for an integration with no authorization URL", async () => {
    await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: AUTH,
      payload: {
        key: "refresh-only",
        provider: "oauth2",
        clientId: "c",
        clientSecret: "s",
        tokenUrl: h.provider.tokenUrl,
        returnUrls: [RETURN_URL],
      },
    });
    const response = await startSession({
      integration: "refresh-only",
      externalId: "u",
      returnUrl: RETURN_URL,
    });
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ error: "integration_error" });
  });

  it("refuses metadata a token URL placeholder cannot take (Zoho's data centre) before the user consents", async () => {
    const created = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: AUTH,
      payload: {
        key: "zoho-crm",
        provider: "zoho",
        clientId: "c",
        clientSecret: "s",
        returnUrls: [RETURN_URL],
      },
    });
    expect(created.statusCode).toBe(201);
    const session = (metadata: Record<string, unknown>) =>
      startSession({ integration: "zoho-crm", externalId: "u", returnUrl: RETURN_URL, metadata });
    const refused = await session({ location: "evil.example" });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ error: "invalid_request" });
    expect(refused.json().message).toMatch(/^metadata: .*"location"/);
    expect(refused.json().message).not.toContain("evil.example");
    expect((await session({ location: "eu" })).statusCode).toBe(201);

    // An integration naming its own token URL uses no data centre: the value is the app's.
    await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: AUTH,
      payload: {
        key: "zoho-eu",
        provider: "zoho",
        clientId: "c",
        clientSecret: "s",
        tokenUrl: "https://accounts.zoho.eu/oauth/v2/token",
        returnUrls: [RETURN_URL],
      },
    });
    const own = await startSession({
      integration: "zoho-eu",
      externalId: "u",
      returnUrl: RETURN_URL,
      metadata: { location: "head office" },
    });
    expect(own.statusCode).toBe(201);
  });

  it("keeps the callback values the provider's apps need (Intuit's realmId) and returns them as extra", async () => {
    const created = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: AUTH,
      payload: {
        key: "quickbooks",
        provider: "intuit",
        clientId: h.provider.clientId,
        clientSecret: h.provider.clientSecret,
        tokenUrl: h.provider.tokenUrl,
        authorizationUrl: h.provider.authorizationUrl,
        returnUrls: [RETURN_URL],
      },
    });
    expect(created.statusCode).toBe(201);
    const started = await startSession({
      integration: "quickbooks",
      externalId: newUser(),
      returnUrl: RETURN_URL,
      metadata: { plan: "pro" },
    });
    const { url } = started.json<{ url: string }>();
    // Intuit adds the company id to the callback; anything else it might add is not kept.
    const returned = `${await consent(url, "approve")}&realmId=9130354711235&note=hello`;
    const { params } = redirectedTo(await callback(returned));
    expect(params.status).toBe("success");

    const view = await app.inject({
      method: "GET",
      url: `/v1/connections/${params.connectionId}`,
      headers: AUTH,
    });
    expect(view.json().metadata).toEqual({ plan: "pro", realmId: "9130354711235" });
    const token = await app.inject({
      method: "GET",
      url: `/v1/connections/${params.connectionId}/token`,
      headers: AUTH,
    });
    expect(token.statusCode).toBe(200);
    expect(token.json().extra).toEqual({ realmId: "9130354711235" });
  });
});

describe("a connect session racing the integration's delete", () => {
  it("finds the integration unknown, as if it had never been there", async () => {
    await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: AUTH,
      payload: {
        key: "going",
        provider: "oauth2",
        clientId: "x",
        clientSecret: "y",
        tokenUrl: h.provider.tokenUrl,
        authorizationUrl: h.provider.authorizationUrl,
        returnUrls: [RETURN_URL],
      },
    });
    // Deleted between the session's read of the integration and its insert.
    const racing = changedAfterRead(h.prisma, "integration", () =>
      h.prisma.integration.delete({ where: { key: "going" } }),
    );
    await expect(
      createConnectSession(
        { ...h.deps, prisma: racing },
        {
          integration: "going",
          externalId: newUser(),
          returnUrl: RETURN_URL,
          redirectUri: `${PUBLIC_URL}/oauth/callback`,
        },
      ),
    ).rejects.toBeInstanceOf(UnknownIntegrationError);
  });
});

describe("POST /v1/connections/exchange", () => {
  const appCode = (verifier: string) => appAuthorizationCode(h.provider, verifier);

  const exchange = (payload: Record<string, unknown>) =>
    app.inject({ method: "POST", url: "/v1/connections/exchange", headers: AUTH, payload });

  it("exchanges the app's code, answers the connection, and refuses the code a second time", async () => {
    const verifier = "v".repeat(64);
    const { code, redirectUri } = await appCode(verifier);
    const externalId = newUser();
    const body = { integration: "mock", externalId, code, redirectUri, codeVerifier: verifier };
    const created = await exchange(body);
    expect(created.statusCode).toBe(201);
    expect(created.body).not.toMatch(/mock-(at|rt)-/);
    const view = created.json<{ id: string }>();
    expect(view).toMatchObject({ integration: "mock", externalId, status: "active" });
    const token = await app.inject({
      method: "GET",
      url: `/v1/connections/${view.id}/token`,
      headers: AUTH,
    });
    expect(h.provider.isAccessTokenValid(token.json().accessToken)).toBe(true);

    const again = await exchange(body);
    expect(again.statusCode).toBe(400);
    expect(again.json()).toMatchObject({ error: "invalid_grant" });
  });

  it("keeps the values a provider's answer gives (Salesforce's instance_url) and its stated refresh token end", async () => {
    // A provider answering as Salesforce does: no expires_in, instance_url to keep.
    const salesforce = await startMockProvider({
      answers: {
        omitExpiresIn: true,
        successFields: () => ({
          instance_url: "https://acme.my.salesforce.com",
          refresh_token_expires_in: 86_400,
        }),
      },
    });
    try {
      const created = await app.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: AUTH,
        payload: {
          key: "crm",
          provider: "salesforce",
          clientId: salesforce.clientId,
          clientSecret: salesforce.clientSecret,
          tokenUrl: salesforce.tokenUrl,
          accessTokenLifetimeSeconds: 7200,
        },
      });
      expect(created.statusCode).toBe(201);
      const redirectUri = "https://app.example.com/oauth/cb";
      const consented = await fetch(
        `${salesforce.authorizationUrl}?${new URLSearchParams({
          response_type: "code",
          client_id: salesforce.clientId,
          redirect_uri: redirectUri,
          approve: "1",
        })}`,
        { redirect: "manual" },
      );
      const code = new URL(consented.headers.get("location") ?? "").searchParams.get("code");
      const before = Date.now();
      const exchanged = await exchange({
        integration: "crm",
        externalId: newUser(),
        code,
        redirectUri,
        metadata: { plan: "pro" },
      });
      expect(exchanged.statusCode).toBe(201);
      const view = exchanged.json<{
        id: string;
        metadata: unknown;
        expiresAt: string;
        refreshTokenExpiresAt: string;
      }>();
      expect(view.metadata).toEqual({
        plan: "pro",
        instance_url: "https://acme.my.salesforce.com",
      });
      const after = Date.now();
      // No expires_in: the integration's session timeout, 2 hours from the exchange.
      const expiresAt = Date.parse(view.expiresAt);
      expect(expiresAt).toBeGreaterThanOrEqual(before + 7_200_000);
      expect(expiresAt).toBeLessThanOrEqual(after + 7_200_000);
      const refreshTokenEnd = Date.parse(view.refreshTokenExpiresAt);
      expect(refreshTokenEnd).toBeGreaterThanOrEqual(before + 86_400_000);
      expect(refreshTokenEnd).toBeLessThanOrEqual(after + 86_400_000);
      const token = await app.inject({
        method: "GET",
        url: `/v1/connections/${view.id}/token`,
        headers: AUTH,
      });
      expect(token.json().extra).toEqual({ instance_url: "https://acme.my.salesforce.com" });
    } finally {
      await salesforce.close();
    }
  });

  it("answers 400 invalid_grant for a bad code or verifier, and 400 invalid_request for bad input", async () => {
    const verifier = "v".repeat(43);
    const { code, redirectUri } = await appCode(verifier);
    const base = { integration: "mock", externalId: newUser(), redirectUri };
    expect(
      (await exchange({ ...base, code: "made-up", codeVerifier: verifier })).json(),
    ).toMatchObject({ error: "invalid_grant" });
    const wrong = await exchange({ ...base, code, codeVerifier: "w".repeat(43) });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json()).toMatchObject({ error: "invalid_grant" });
    const short = await exchange({ ...base, code, codeVerifier: "short" });
    expect(short.json()).toMatchObject({ error: "invalid_request" });
    expect(short.json().message).toMatch(/^codeVerifier: /);
    const unknown = await exchange({ ...base, integration: "nope", code });
    expect(unknown.json().message).toMatch(/^integration: /);
  });
});
