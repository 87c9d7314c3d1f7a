import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { intuit } from "./intuit";

describe("intuit", () => {
  it("posts a form with Basic client auth and Accept: application/json", () => {
    const request = buildRefreshRequest(
      { provider: "intuit", clientId: "AB-id", clientSecret: "qb" },
      { refreshToken: "AB11-rt" },
    );
    expect(request.url).toBe("https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer");
    expect(request.headers).toMatchObject({
      accept: "application/json",
      authorization: `Basic ${Buffer.from("AB-id:qb").toString("base64")}`,
    });
  });
});

/** One-hour tokens and a rolling 100-day refresh token stated on every answer. */
const imitation: ProviderImitation = {
  grant: { accessTokenTtlSeconds: 3600 },
  answers: {
    successFields: () => ({ x_refresh_token_expires_in: 8_726_400, token_type: "bearer" }),
    invalidGrant: { status: 400, body: { error: "invalid_grant" } },
    invalidClient: { status: 401, body: { error: "invalid_client" } },
  },
  success: (now) => ({ refreshTokenExpiresAt: new Date(now.getTime() + 8_726_400_000) }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "60" }), retryAfterMs: 60_000 },
  quirks: [
    {
      name: "stores the refresh token's rolling expiry with a changed refresh token",
      answer: () => ({
        status: 200,
        body: {
          access_token: "eyJ-at",
          refresh_token: "AB11-new",
          token_type: "bearer",
          expires_in: 3600,
          x_refresh_token_expires_in: 8_640_000,
        },
      }),
      expected: { outcome: "success", refreshToken: "AB11-new" },
    },
  ],
};

describeProviderContract(intuit, imitation);
