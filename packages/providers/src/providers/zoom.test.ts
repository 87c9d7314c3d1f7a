import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { zoom } from "./zoom";

describe("zoom", () => {
  it("posts the grant with Basic client credentials to zoom.us", () => {
    const request = buildRefreshRequest(
      { provider: "zoom", clientId: "abcDEF123", clientSecret: "s" },
      { refreshToken: "rt" },
    );
    expect(request.url).toBe("https://zoom.us/oauth/token");
    expect(request.headers.authorization).toMatch(/^Basic /);
  });
});

/** Zoom: rotating refresh tokens, one-hour access tokens; 429 with Retry-After. */
const imitation: ProviderImitation = {
  grant: { rotate: true, scope: "user:read" },
  answers: {
    // Zoom's dead refresh token: invalid_request, the reason in `reason`.
    invalidGrant: {
      status: 400,
      body: { reason: "Invalid Token!", error: "invalid_request" },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", reason: "Invalid client_id or client_secret" },
    },
  },
  success: () => ({ scope: "user:read" }),
  rateLimit: {
    answer: () => ({
      status: 429,
      retryAfter: "10",
      headers: { "x-ratelimit-category": "Light", "x-ratelimit-type": "QPS" },
    }),
    retryAfterMs: 10_000,
  },
  quirks: [
    {
      name: "keeps any other invalid_request (a malformed request) apart from a dead grant",
      answer: () => ({
        status: 400,
        body: { reason: "Unsupported grant type", error: "invalid_request" },
      }),
      expected: { outcome: "unknown", message: "Unsupported grant type" },
    },
  ],
};

describeProviderContract(zoom, imitation, ({ mock, refresh }) => {
  it("refuses a rotated-away refresh token: no grace, a lost answer is in doubt", async () => {
    const grant = mock().issueGrant(imitation.grant);
    await refresh(grant.refreshToken);
    expect(await refresh(grant.refreshToken)).toMatchObject({ outcome: "invalid_grant" });
    expect(zoom.reuseGrace).toBeNull();
  });
});
