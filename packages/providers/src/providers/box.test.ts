import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { box } from "./box";

describe("box", () => {
  it("posts the grant with the client id and secret in the form", () => {
    const request = buildRefreshRequest(
      { provider: "box", clientId: "abcdefghijklmnopqrstuvwxyz012345", clientSecret: "s" },
      { refreshToken: "rt" },
    );
    expect(request.url).toBe("https://api.box.com/oauth2/token");
    expect(request.headers.authorization).toBeUndefined();
  });

  it("declares single-use refresh tokens without a reuse grace", () => {
    expect(box).toMatchObject({ rotatesRefreshToken: true, reuseGrace: null });
  });
});

/** Box: single-use refresh tokens (60 days), about an hour of access token. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 4_169 },
  answers: {
    successFields: () => ({
      restricted_to: [],
      issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
    }),
    invalidGrant: {
      status: 400,
      body: { error: "invalid_grant", error_description: "Refresh token has expired" },
    },
    invalidClient: {
      status: 400,
      body: { error: "invalid_client", error_description: "The client credentials are invalid" },
    },
  },
  rateLimit: { answer: () => ({ status: 429, retryAfter: "20" }), retryAfterMs: 20_000 },
};

describeProviderContract(box, imitation, ({ mock, refresh }) => {
  it("refuses a refresh token already used: a lost answer is in doubt", async () => {
    const grant = mock().issueGrant(imitation.grant);
    await refresh(grant.refreshToken);
    expect(await refresh(grant.refreshToken)).toMatchObject({ outcome: "invalid_grant" });
  });
});
