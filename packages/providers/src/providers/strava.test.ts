import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "../build-authorization-url";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { strava } from "./strava";

const settings = { provider: "strava", clientId: "12345", clientSecret: "st" } as const;

describe("strava", () => {
  it("posts body credentials to the v3 token endpoint", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "rt" });
    expect(request.url).toBe("https://www.strava.com/api/v3/oauth/token");
    expect(new URLSearchParams(request.body).get("client_id")).toBe("12345");
  });

  it("asks for comma-separated scopes", () => {
    const url = new URL(
      buildAuthorizationUrl(
        { ...settings, scopes: ["read", "activity:read_all"] },
        { redirectUri: "https://e.example/cb", state: "st" },
      ),
    );
    expect(url.searchParams.get("scope")).toBe("read,activity:read_all");
  });
});

/** Six-hour tokens with an epoch `expires_at`, errors in Strava's own body. */
const imitation: ProviderImitation = {
  grant: { accessTokenTtlSeconds: 21_600 },
  answers: {
    successFields: ({ expiresIn, issuedAt }) => ({
      expires_at: Math.floor(issuedAt.getTime() / 1000) + expiresIn,
    }),
    invalidGrant: {
      status: 400,
      body: {
        message: "Bad Request",
        errors: [{ resource: "RefreshToken", field: "refresh_token", code: "invalid" }],
      },
    },
    invalidClient: {
      status: 401,
      body: {
        message: "Authorization Error",
        errors: [{ resource: "Application", field: "client_id", code: "invalid" }],
      },
    },
  },
  // Strava's rate limits come as 429 with usage headers but no reset time.
  rateLimit: {
    answer: () => ({
      status: 429,
      headers: { "X-RateLimit-Limit": "200,2000", "X-RateLimit-Usage": "201,300" },
      body: {
        message: "Rate Limit Exceeded",
        errors: [{ resource: "Application", code: "exceeded" }],
      },
    }),
    retryAfterMs: null,
  },
  quirks: [
    {
      name: "keeps Strava's message, never the resource list, as the message",
      answer: () => ({
        status: 400,
        body: {
          message: "Bad Request",
          errors: [{ resource: "RefreshToken", field: "refresh_token", code: "invalid" }],
        },
      }),
      expected: { outcome: "invalid_grant", errorCode: "RefreshToken", message: "Bad Request" },
    },
  ],
};

describeProviderContract(strava, imitation, ({ refresh, mock }) => {
  it("takes the epoch expires_at when expires_in is missing", async () => {
    const grant = mock().issueGrant();
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const at = Math.floor(now.getTime() / 1000) + 20_000;
    mock().failNext(
      1,
      { status: 200, body: { access_token: "a", refresh_token: "r", expires_at: at } },
      { grantId: grant.grantId },
    );
    expect(await refresh(grant.refreshToken, { now })).toMatchObject({
      expiresAt: new Date(at * 1000),
    });
  });
});
