import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "./build-authorization-url";
import { buildCodeExchangeRequest } from "./build-code-exchange-request";
import { classifyAnswer } from "./classify-answer";
import { type MockProvider, startMockProvider } from "./testing/mock-provider";
import type { IntegrationSettings, TokenRequest } from "./types";

const grant = {
  code: "code-1",
  redirectUri: "https://evergreen.example.com/oauth/callback",
  codeVerifier: "v".repeat(43),
};

describe("buildCodeExchangeRequest", () => {
  it("posts the code grant with the refresh's client authentication and body format", () => {
    const request = buildCodeExchangeRequest(
      { provider: "google", clientId: "1.apps.googleusercontent.com", clientSecret: "s" },
      grant,
    );
    expect(request.url).toBe("https://oauth2.googleapis.com/token");
    expect(Object.fromEntries(new URLSearchParams(request.body))).toEqual({
      grant_type: "authorization_code",
      code: "code-1",
      redirect_uri: grant.redirectUri,
      code_verifier: grant.codeVerifier,
      client_id: "1.apps.googleusercontent.com",
      client_secret: "s",
    });
    const basicJson = buildCodeExchangeRequest(
      {
        provider: "oauth2",
        clientId: "c",
        clientSecret: "s",
        tokenUrl: "https://id.example.com/token",
        bodyFormat: "json",
      },
      { ...grant, codeVerifier: null },
    );
    expect(basicJson.headers.authorization).toBe(`Basic ${Buffer.from("c:s").toString("base64")}`);
    expect(JSON.parse(basicJson.body)).toEqual({
      grant_type: "authorization_code",
      code: "code-1",
      redirect_uri: grant.redirectUri,
    });
  });

  it("sends no scope: the grant carries the scopes consented to", () => {
    const request = buildCodeExchangeRequest(
      { provider: "microsoft", clientId: "c", clientSecret: "s", scopes: ["User.Read"] },
      grant,
    );
    expect(new URLSearchParams(request.body).has("scope")).toBe(false);
  });
});

describe("code exchange against the mock provider", () => {
  let provider: MockProvider;
  let settings: IntegrationSettings;
  beforeAll(async () => {
    provider = await startMockProvider();
    settings = {
      provider: "oauth2",
      clientId: provider.clientId,
      clientSecret: provider.clientSecret,
      tokenUrl: provider.tokenUrl,
      authorizationUrl: provider.authorizationUrl,
      scopes: ["read"],
    };
  });
  afterAll(() => provider.close());

  /** Consents at the mock provider, as a user would, and returns the code it sends back. */
  async function consent(codeVerifier: string): Promise<string> {
    const url = buildAuthorizationUrl(
      settings,
      { redirectUri: grant.redirectUri, state: "s1", codeVerifier },
      { allowInsecureTokenUrls: true },
    );
    const answer = await fetch(`${url}&approve=1`, { redirect: "manual" });
    const back = new URL(answer.headers.get("location") ?? "");
    expect(back.searchParams.get("state")).toBe("s1");
    return back.searchParams.get("code") ?? "";
  }

  async function exchange(code: string, codeVerifier: string) {
    const request: TokenRequest = buildCodeExchangeRequest(
      settings,
      { code, redirectUri: grant.redirectUri, codeVerifier },
      { allowInsecureTokenUrls: true },
    );
    const response = await fetch(request.url, request);
    const answer = { status: response.status, headers: {}, body: await response.text() };
    return classifyAnswer("oauth2", answer, new Date());
  }

  it("exchanges a code once, for tokens the classifier reads like a refresh's", async () => {
    const code = await consent(grant.codeVerifier);
    const result = await exchange(code, grant.codeVerifier);
    expect(result).toMatchObject({ outcome: "success", scope: "read" });
    if (result.outcome !== "success") throw new Error("unreachable");
    expect(provider.isAccessTokenValid(result.accessToken)).toBe(true);
    expect(await exchange(code, grant.codeVerifier)).toMatchObject({ outcome: "invalid_grant" });
    // RFC 6749 §4.1.2: a replayed code revokes what it was exchanged for.
    expect(provider.isAccessTokenValid(result.accessToken)).toBe(false);
  });

  it("classifies a wrong PKCE verifier as invalid_grant", async () => {
    const code = await consent(grant.codeVerifier);
    expect(await exchange(code, "w".repeat(43))).toMatchObject({
      outcome: "invalid_grant",
      errorCode: "invalid_grant",
    });
  });
});
