import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { hubspot } from "./hubspot";

describe("hubspot", () => {
  it("posts body credentials to the v1 token endpoint", () => {
    const request = buildRefreshRequest(
      { provider: "hubspot", clientId: "5fd5-id", clientSecret: "hs" },
      { refreshToken: "na1-rt" },
    );
    expect(request.url).toBe("https://api.hubapi.com/oauth/v1/token");
    expect(Object.fromEntries(new URLSearchParams(request.body))).toEqual({
      grant_type: "refresh_token",
      refresh_token: "na1-rt",
      client_id: "5fd5-id",
      client_secret: "hs",
    });
  });
});

/** 30-minute tokens, the `status` error body, window-length rate-limit headers. */
const imitation: ProviderImitation = {
  grant: { accessTokenTtlSeconds: 1800 },
  answers: {
    invalidGrant: {
      status: 400,
      body: {
        status: "BAD_REFRESH_TOKEN",
        message: "missing or invalid refresh token",
        correlationId: "aeb5f871-7f07-4993-9211-075dc63e7cbf",
      },
    },
    invalidClient: {
      status: 400,
      body: { status: "BAD_CLIENT_ID", message: "missing or invalid client_id" },
    },
  },
  rateLimit: {
    answer: () => ({
      status: 429,
      headers: {
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Max": "100",
        "X-HubSpot-RateLimit-Remaining": "0",
      },
      body: {
        status: "error",
        message: "You have reached your ten_secondly_rolling limit.",
        errorType: "RATE_LIMIT",
      },
    }),
    retryAfterMs: 10_000,
  },
  quirks: [
    {
      name: "keeps HubSpot's message, never its correlation id, as the message",
      answer: () => ({
        status: 400,
        body: { status: "BAD_REFRESH_TOKEN", message: "refresh token is expired" },
      }),
      expected: {
        outcome: "invalid_grant",
        errorCode: "BAD_REFRESH_TOKEN",
        message: "refresh token is expired",
      },
    },
    {
      name: "reads the newer category-style body",
      answer: () => ({
        status: 400,
        body: { category: "RATE_LIMIT", message: "You have reached your secondly limit." },
      }),
      expected: { outcome: "rate_limited" },
    },
  ],
};

describeProviderContract(hubspot, imitation);
