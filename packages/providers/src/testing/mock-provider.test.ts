import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { type MockProvider, type MockProviderOptions, startMockProvider } from "./mock-provider";

const started: MockProvider[] = [];

async function start(options?: MockProviderOptions): Promise<MockProvider> {
  const provider = await startMockProvider(options);
  started.push(provider);
  return provider;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((provider) => provider.close()));
});

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

async function refresh(
  provider: MockProvider,
  refreshToken: string,
  init: { basic?: boolean; json?: boolean; secret?: string } = {},
): Promise<Answer> {
  const secret = init.secret ?? provider.clientSecret;
  const params: Record<string, string> = {
    grant_type: "refresh_token",
    refresh_token: refreshToken,
  };
  const headers: Record<string, string> = {};
  if (init.basic === true) {
    const pair = `${encodeURIComponent(provider.clientId)}:${encodeURIComponent(secret)}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString("base64")}`;
  } else {
    params.client_id = provider.clientId;
    params.client_secret = secret;
  }
  headers["content-type"] =
    init.json === true ? "application/json" : "application/x-www-form-urlencoded";
  const body = init.json === true ? JSON.stringify(params) : new URLSearchParams(params).toString();
  const response = await fetch(provider.tokenUrl, { method: "POST", headers, body });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    json: text.startsWith("{") ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

describe("MockProvider", () => {
  it("listens on 127.0.0.1 and serves POST /token", async () => {
    const provider = await start();
    expect(provider.tokenUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/token$/);
    const missing = await fetch(`${provider.url}/nope`, { method: "POST" });
    expect(missing.status).toBe(404);
    const wrongMethod = await fetch(provider.tokenUrl);
    expect(wrongMethod.status).toBe(405);
  });

  it("refreshes a non-rotating grant: new access token, same refresh token", async () => {
    const provider = await start();
    const grant = provider.issueGrant({ accessTokenTtlSeconds: 120 });
    const first = await refresh(provider, grant.refreshToken);
    const second = await refresh(provider, grant.refreshToken, { basic: true, json: true });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({
      token_type: "Bearer",
      expires_in: 120,
      refresh_token: grant.refreshToken,
    });
    expect(second.status).toBe(200);
    const tokens = new Set([grant.accessToken, first.json.access_token, second.json.access_token]);
    expect(tokens.size).toBe(3);
    expect(provider.refreshesByGrant.get(grant.grantId)).toBe(2);
    expect(provider.isAccessTokenValid(String(second.json.access_token))).toBe(true);
    expect(provider.reuseCount).toBe(0);
  });

  it("answers in an imitated provider's shape, its grants and clients checked as ever", async () => {
    const provider = await start({
      answers: {
        omitExpiresIn: true,
        successFields: ({ expiresIn }) => ({ ok: true, lifetime: expiresIn }),
        invalidGrant: { status: 200, body: { ok: false, error: "invalid_refresh_token" } },
        invalidClient: { status: 403, body: { status: 403, message: "invalid client secret" } },
      },
    });
    const grant = provider.issueGrant({ accessTokenTtlSeconds: 90 });
    const ok = await refresh(provider, grant.refreshToken);
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ ok: true, lifetime: 90 });
    expect(ok.json).not.toHaveProperty("expires_in");
    const wrongClient = await refresh(provider, grant.refreshToken, { secret: "nope" });
    expect(wrongClient).toMatchObject({
      status: 403,
      json: { status: 403, message: "invalid client secret" },
    });
    provider.revoke(grant.refreshToken);
    const dead = await refresh(provider, grant.refreshToken);
    expect(dead).toMatchObject({
      status: 200,
      json: { ok: false, error: "invalid_refresh_token" },
    });
    expect(provider.refreshesByGrant.get(grant.grantId)).toBe(1);
  });

  it("omits the refresh token from answers when asked", async () => {
    const provider = await start();
    const grant = provider.issueGrant({ omitRefreshToken: true, scope: "read" });
    const answer = await refresh(provider, grant.refreshToken);
    expect(answer.json.refresh_token).toBeUndefined();
    expect(answer.json.scope).toBe("read");
    expect((await refresh(provider, grant.refreshToken)).status).toBe(200);
  });

  it("rotates refresh tokens and counts reuse of a rotated-away one, revoking the grant", async () => {
    const provider = await start();
    const grant = provider.issueGrant({ rotate: true });
    const first = await refresh(provider, grant.refreshToken);
    const rotated = String(first.json.refresh_token);
    expect(rotated).not.toBe(grant.refreshToken);
    expect(provider.grant(grant.grantId)?.refreshToken).toBe(rotated);
    const second = await refresh(provider, rotated);
    expect(second.status).toBe(200);
    expect(provider.reuseCount).toBe(0);

    const reuse = await refresh(provider, grant.refreshToken);
    expect(reuse).toMatchObject({ status: 400, json: { error: "invalid_grant" } });
    expect(provider.reuseCount).toBe(1);
    // Like real providers, reuse kills the whole chain, including the newest token.
    const latest = String(second.json.refresh_token);
    expect((await refresh(provider, latest)).json.error).toBe("invalid_grant");
    expect(provider.grant(grant.grantId)?.revoked).toBe(true);
    expect(provider.isAccessTokenValid(String(second.json.access_token))).toBe(false);
    expect(provider.reuseCount).toBe(1);
  });

  it("accepts the rotated-away refresh token again within a grace window in seconds", async () => {
    const provider = await start();
    const grant = provider.issueGrant({ rotate: true, reuseGrace: 1800 });
    const lost = await refresh(provider, grant.refreshToken);
    // The answer above is "lost": the client presents the old token again, inside the window.
    const again = await refresh(provider, grant.refreshToken);
    expect(again.status).toBe(200);
    expect(again.json.refresh_token).not.toBe(lost.json.refresh_token);
    expect(provider.grant(grant.grantId)?.refreshToken).toBe(again.json.refresh_token);
    expect(provider.reuseCount).toBe(0);
    // The lost successor died when its predecessor was used in its place.
    expect((await refresh(provider, String(lost.json.refresh_token))).json.error).toBe(
      "invalid_grant",
    );
    expect(provider.reuseCount).toBe(1);
  });

  it("ends a zero-second grace at once, and an until-used grace when the successor is used", async () => {
    const provider = await start();
    const none = provider.issueGrant({ rotate: true, reuseGrace: 0 });
    await refresh(provider, none.refreshToken);
    expect((await refresh(provider, none.refreshToken)).json.error).toBe("invalid_grant");

    const shopify = provider.issueGrant({ rotate: true, reuseGrace: "until_new_token_used" });
    const first = await refresh(provider, shopify.refreshToken);
    expect((await refresh(provider, shopify.refreshToken)).status).toBe(200);
    const current = String(provider.grant(shopify.grantId)?.refreshToken);
    expect((await refresh(provider, current)).status).toBe(200);
    // The successor was used: its predecessor is now dead, and so is the first one's answer.
    expect((await refresh(provider, shopify.refreshToken)).json.error).toBe("invalid_grant");
    expect(String(first.json.refresh_token)).not.toBe(current);
    expect(provider.reuseCount).toBe(2);
  });

  it("answers invalid_grant for revoked and unknown refresh tokens", async () => {
    const provider = await start();
    const grant = provider.issueGrant();
    provider.revoke(grant.refreshToken);
    expect((await refresh(provider, grant.refreshToken)).json.error).toBe("invalid_grant");
    expect((await refresh(provider, "made-up")).json.error).toBe("invalid_grant");
    expect(provider.reuseCount).toBe(0);
    expect(() => provider.revoke("made-up")).toThrow();
  });

  it("revokes the whole grant given one of its access tokens", async () => {
    const provider = await start();
    const grant = provider.issueGrant();
    provider.revoke(grant.accessToken);
    expect(provider.grant(grant.grantId)?.revoked).toBe(true);
    expect(provider.isAccessTokenValid(grant.accessToken)).toBe(false);
    expect((await refresh(provider, grant.refreshToken)).json.error).toBe("invalid_grant");
  });

  it("revokes a grant at POST /revoke (RFC 7009), or answers 503 + Retry-After on demand", async () => {
    const provider = await start();
    const grant = provider.issueGrant();
    const revoke = (token: string, secret = provider.clientSecret) =>
      fetch(provider.revocationUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          token,
          token_type_hint: "refresh_token",
          client_id: provider.clientId,
          client_secret: secret,
        }),
      });
    provider.failNextRevocation(1, { status: 503, retryAfter: "3" });
    const busy = await revoke(grant.refreshToken);
    expect([busy.status, busy.headers.get("retry-after")]).toEqual([503, "3"]);
    expect(provider.grant(grant.grantId)?.revoked).toBe(false);
    expect((await revoke(grant.refreshToken, "wrong")).status).toBe(401);
    expect((await revoke(grant.refreshToken)).status).toBe(200);
    expect((await refresh(provider, grant.refreshToken)).json.error).toBe("invalid_grant");
    // RFC 7009 §2.2: an unknown token is no error.
    expect((await revoke("made-up")).status).toBe(200);
  });

  it("checks client authentication, Basic credentials form-urlencoded per RFC 6749", async () => {
    const provider = await start({ clientId: "my app", clientSecret: "p@ss:w%rd+/" });
    const grant = provider.issueGrant();
    expect((await refresh(provider, grant.refreshToken, { basic: true })).status).toBe(200);
    const wrong = await refresh(provider, grant.refreshToken, { basic: true, secret: "nope" });
    expect(wrong).toMatchObject({ status: 401, json: { error: "invalid_client" } });
    expect(wrong.headers.get("www-authenticate")).toBe("Basic");
    const anonymous = await fetch(provider.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `grant_type=refresh_token&refresh_token=${grant.refreshToken}`,
    });
    expect(anonymous.status).toBe(401);
    expect(provider.refreshesByGrant.get(grant.grantId)).toBe(1);
  });

  it("records the shape of received requests", async () => {
    const provider = await start({ keepReceived: 2 });
    const grant = provider.issueGrant();
    await refresh(provider, grant.refreshToken);
    await refresh(provider, grant.refreshToken, { basic: true, json: true });
    await refresh(provider, grant.refreshToken, { basic: true });
    expect(provider.requests).toBe(3);
    expect(provider.received).toHaveLength(2);
    const [jsonRequest, formRequest] = provider.received;
    expect(jsonRequest).toMatchObject({
      method: "POST",
      path: "/token",
      contentType: "application/json",
      clientAuth: "basic",
      clientId: "mock-client",
      clientSecret: "mock-secret",
      params: { grant_type: "refresh_token", refresh_token: grant.refreshToken },
    });
    expect(formRequest?.contentType).toBe("application/x-www-form-urlencoded");
    expect(formRequest?.headers.authorization).toMatch(/^Basic /);
  });

  it("plays scripted failures in order, then behaves normally", async () => {
    const provider = await start();
    const grant = provider.issueGrant();
    provider.enqueue(
      { status: 429, retryAfter: "2" },
      { status: 503 },
      { status: 200, body: { error: "bad_refresh_token" } },
      { status: 400, error: "invalid_grant", errorDescription: "scripted" },
      { status: 502, body: "<html>Bad Gateway</html>", headers: { "X-Extra": "1" } },
    );
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await refresh(provider, grant.refreshToken));
    expect(answers.map((answer) => answer.status)).toEqual([429, 503, 200, 400, 502, 200]);
    expect(answers[0]?.headers.get("retry-after")).toBe("2");
    expect(answers[2]?.json).toEqual({ error: "bad_refresh_token" });
    expect(answers[3]?.json).toEqual({ error: "invalid_grant", error_description: "scripted" });
    expect(answers[4]?.headers.get("x-extra")).toBe("1");
    expect(answers[5]?.json.access_token).toEqual(expect.any(String));
    // Scripted answers did not touch the grant.
    expect(provider.refreshesByGrant.get(grant.grantId)).toBe(1);
  });

  it("scripts failures for one grant only, following it across rotations", async () => {
    const provider = await start();
    const target = provider.issueGrant({ rotate: true });
    const other = provider.issueGrant();
    provider.failNext(
      2,
      { status: 401, error: "invalid_client" },
      { refreshToken: target.refreshToken },
    );
    expect((await refresh(provider, other.refreshToken)).status).toBe(200);
    expect((await refresh(provider, target.refreshToken)).status).toBe(401);
    expect((await refresh(provider, target.refreshToken)).status).toBe(401);
    expect((await refresh(provider, target.refreshToken)).status).toBe(200);
    expect(() => provider.failNext(1, { status: 500 }, { grantId: "nope" })).toThrow();
  });

  it("can apply the refresh and lose the answer, like a dropped response", async () => {
    const provider = await start();
    const grant = provider.issueGrant({ rotate: true });
    provider.enqueue({ status: 502, applyRefresh: true });
    expect((await refresh(provider, grant.refreshToken)).status).toBe(502);
    expect(provider.grant(grant.grantId)?.refreshToken).not.toBe(grant.refreshToken);
    // The client never saw the new token; retrying with the old one is reuse.
    expect((await refresh(provider, grant.refreshToken)).status).toBe(400);
    expect(provider.reuseCount).toBe(1);
  });

  it("hangs until close, which ends the request", async () => {
    const provider = await startMockProvider();
    const grant = provider.issueGrant();
    provider.enqueue({ hang: true });
    const pending = refresh(provider, grant.refreshToken).then(
      () => "answered",
      () => "failed",
    );
    const early = await Promise.race([
      pending,
      new Promise((resolve) => setTimeout(() => resolve("still hanging"), 100)),
    ]);
    expect(early).toBe("still hanging");
    await provider.close();
    expect(await pending).toBe("failed");
  });

  it("waits latencyMs before answering", async () => {
    const provider = await start({ latencyMs: 60 });
    const grant = provider.issueGrant();
    const startedAt = performance.now();
    expect((await refresh(provider, grant.refreshToken)).status).toBe(200);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(55);
  });

  it("closes promptly while an answer is delayed", async () => {
    const provider = await startMockProvider({ latencyMs: 10_000 });
    const grant = provider.issueGrant();
    const pending = refresh(provider, grant.refreshToken).then(
      () => "answered",
      () => "failed",
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const startedAt = performance.now();
    await provider.close();
    expect(await pending).toBe("failed");
    expect(performance.now() - startedAt).toBeLessThan(1000);
  });
});

describe("MockProvider authorization endpoint", () => {
  const redirectUri = "http://127.0.0.1:1/oauth/callback";

  function authorize(provider: MockProvider, extra: Record<string, string> = {}) {
    const query = new URLSearchParams({
      response_type: "code",
      client_id: provider.clientId,
      redirect_uri: redirectUri,
      state: "st-1",
      scope: "read write",
      ...extra,
    });
    return fetch(`${provider.authorizationUrl}?${query}`, { redirect: "manual" });
  }

  const back = (response: Response) =>
    Object.fromEntries(new URL(response.headers.get("location") ?? "").searchParams);

  function exchange(provider: MockProvider, params: Record<string, string>) {
    const body = new URLSearchParams({
      grant_type: "authorization_code",
      redirect_uri: redirectUri,
      client_id: provider.clientId,
      client_secret: provider.clientSecret,
      ...params,
    });
    return fetch(provider.tokenUrl, { method: "POST", body }).then(async (response) => ({
      status: response.status,
      json: (await response.json()) as Record<string, unknown>,
    }));
  }

  it("shows a consent page whose links approve or deny", async () => {
    const provider = await start();
    const page = await authorize(provider);
    expect(page.status).toBe(200);
    const html = await page.text();
    const links = [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1]?.replace(/&#38;/g, "&"));
    expect(links).toHaveLength(2);
    const [allow, deny] = links.map((link) => `${provider.url}${link}`);
    const approved = await fetch(allow ?? "", { redirect: "manual" });
    expect(approved.status).toBe(302);
    expect(back(approved)).toMatchObject({ state: "st-1", code: expect.any(String) });
    const denied = await fetch(deny ?? "", { redirect: "manual" });
    expect(back(denied)).toEqual({ error: "access_denied", state: "st-1" });
  });

  it("refuses to redirect for an unknown client or a bad redirect_uri", async () => {
    const provider = await start();
    expect((await authorize(provider, { client_id: "someone-else" })).status).toBe(400);
    expect((await authorize(provider, { redirect_uri: "javascript:alert(1)" })).status).toBe(400);
    const plain = await authorize(provider, {
      code_challenge: "x",
      code_challenge_method: "plain",
    });
    expect(back(plain)).toMatchObject({ error: "invalid_request", state: "st-1" });
  });

  it("exchanges a code for the consenting grant's tokens, once, with its redirect_uri", async () => {
    const provider = await start({ consentGrant: { rotate: true, accessTokenTtlSeconds: 60 } });
    const { code = "" } = back(await authorize(provider, { approve: "1" }));
    const elsewhere = await exchange(provider, { code, redirect_uri: "http://127.0.0.1:2/cb" });
    expect(elsewhere).toMatchObject({ status: 400, json: { error: "invalid_grant" } });
    const answer = await exchange(provider, { code });
    expect(answer).toMatchObject({
      status: 200,
      json: { token_type: "Bearer", expires_in: 60, scope: "read write" },
    });
    const rotated = await refresh(provider, String(answer.json.refresh_token));
    expect(rotated.json.refresh_token).not.toBe(answer.json.refresh_token);
    expect((await exchange(provider, { code })).json.error).toBe("invalid_grant");
  });

  it("checks the PKCE verifier against the S256 challenge", async () => {
    const provider = await start();
    const verifier = "a".repeat(43);
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const consent = { approve: "1", code_challenge: challenge, code_challenge_method: "S256" };
    const first = back(await authorize(provider, consent)).code ?? "";
    expect((await exchange(provider, { code: first })).json.error).toBe("invalid_grant");
    const second = back(await authorize(provider, consent)).code ?? "";
    const wrong = await exchange(provider, { code: second, code_verifier: "b".repeat(43) });
    expect(wrong.json.error).toBe("invalid_grant");
    const third = back(await authorize(provider, consent)).code ?? "";
    expect((await exchange(provider, { code: third, code_verifier: verifier })).status).toBe(200);
  });
});
