import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { linkedin } from "./linkedin";

describe("linkedin", () => {
  it("posts the grant with the client id and secret in the form", () => {
    const request = buildRefreshRequest(
      { provider: "linkedin", clientId: "86abcdefghijkl", clientSecret: "s" },
      { refreshToken: "rt" },
    );
    expect(request.url).toBe("https://www.linkedin.com/oauth/v2/accessToken");
    expect(Object.fromEntries(new URLSearchParams(request.body))).toMatchObject({
      client_id: "86abcdefghijkl",
      client_secret: "s",
    });
    expect(linkedin.rotatesRefreshToken).toBe(false);
  });
});

/** LinkedIn: 60-day access tokens; the refresh token's end (365 days from consent) is restated. */
const imitation: ProviderImitation = {
  grant: { accessTokenTtlSeconds: 5_184_000 },
  answers: {
    successFields: () => ({ refresh_token_expires_in: 26_438_400 }),
    invalidGrant: {
      status: 400,
      body: {
        error: "invalid_grant",
        error_description:
          "The provided authorization grant or refresh token is invalid, expired or revoked.",
      },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", error_description: "Client authentication failed" },
    },
  },
  // The refresh token's end does not move with refreshes: it is what the answer restates.
  success: (now) => ({ refreshTokenExpiresAt: new Date(now.getTime() + 26_438_400_000) }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "3600" }), retryAfterMs: 3_600_000 },
};

describeProviderContract(linkedin, imitation);
