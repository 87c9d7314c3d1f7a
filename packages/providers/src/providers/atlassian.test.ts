import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "../build-authorization-url";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { atlassian } from "./atlassian";

const settings = { provider: "atlassian", clientId: "at-id", clientSecret: "at" } as const;

describe("atlassian", () => {
  it("posts a JSON body with the client credentials in it", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "at-rt" });
    expect(request.url).toBe("https://auth.atlassian.com/oauth/token");
    expect(request.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(request.body)).toEqual({
      grant_type: "refresh_token",
      refresh_token: "at-rt",
      client_id: "at-id",
      client_secret: "at",
    });
  });

  it("asks for the API audience and offline_access", () => {
    const url = new URL(
      buildAuthorizationUrl(
        { ...settings, scopes: ["read:jira-work"] },
        { redirectUri: "https://e.example/cb", state: "st" },
      ),
    );
    expect(url.searchParams.get("audience")).toBe("api.atlassian.com");
    expect(url.searchParams.get("scope")).toBe("read:jira-work offline_access");
  });
});

/** Rotating refresh tokens; a dead grant is 403, not 400. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 3600, scope: "read:jira-work offline_access" },
  answers: {
    invalidGrant: {
      status: 403,
      body: { error: "invalid_grant", error_description: "Unknown or invalid refresh token." },
    },
    invalidClient: {
      status: 401,
      body: { error: "access_denied", error_description: "Unauthorized" },
    },
  },
  success: () => ({ scope: "read:jira-work offline_access" }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "5" }), retryAfterMs: 5_000 },
  quirks: [
    {
      name: "reads 403 invalid_grant as a dead grant, not a refusal of the client",
      answer: () => ({
        status: 403,
        body: { error: "invalid_grant", error_description: "refresh_token is invalid" },
      }),
      expected: { outcome: "invalid_grant", message: "refresh_token is invalid" },
    },
  ],
};

describeProviderContract(atlassian, imitation);
