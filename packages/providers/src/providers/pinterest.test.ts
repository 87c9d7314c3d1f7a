import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { pinterest } from "./pinterest";

describe("pinterest", () => {
  it("posts the grant with Basic client credentials to api.pinterest.com", () => {
    const request = buildRefreshRequest(
      { provider: "pinterest", clientId: "1234567", clientSecret: "s" },
      { refreshToken: "pinr.rt" },
    );
    expect(request.url).toBe("https://api.pinterest.com/v5/oauth/token");
    expect(request.headers.authorization).toMatch(/^Basic /);
    expect(pinterest.rotatesRefreshToken).toBe(false);
  });
});

/** Pinterest v5: 30-day access tokens; continuous refresh restates the refresh token's end. */
const imitation: ProviderImitation = {
  grant: { accessTokenTtlSeconds: 2_592_000, scope: "boards:read,pins:read" },
  answers: {
    successFields: () => ({
      response_type: "refresh_token",
      refresh_token_expires_in: 31_536_000,
    }),
    invalidGrant: {
      status: 400,
      body: { error: "invalid_grant", error_description: "Invalid refresh token" },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", error_description: "Authentication failed" },
    },
  },
  success: (now) => ({
    scope: "boards:read,pins:read",
    refreshTokenExpiresAt: new Date(now.getTime() + 31_536_000_000),
  }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "60" }), retryAfterMs: 60_000 },
};

describeProviderContract(pinterest, imitation);
