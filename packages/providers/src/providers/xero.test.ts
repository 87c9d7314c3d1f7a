import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { xero } from "./xero";

describe("xero", () => {
  it("posts the grant with Basic client credentials to identity.xero.com", () => {
    const request = buildRefreshRequest(
      { provider: "xero", clientId: "0123456789ABCDEF0123456789ABCDEF", clientSecret: "s" },
      { refreshToken: "rt" },
    );
    expect(request.url).toBe("https://identity.xero.com/connect/token");
    expect(request.headers.authorization).toMatch(/^Basic /);
    expect(request.body).toBe("grant_type=refresh_token&refresh_token=rt");
  });

  it("declares a rotating grant with Xero's 30-minute reuse grace", () => {
    expect(xero).toMatchObject({ rotatesRefreshToken: true, reuseGrace: 1800 });
  });
});

/** Xero: rotating refresh tokens, 30-minute access tokens, a 30-minute reuse grace. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 1800, reuseGrace: 1800 },
  answers: {
    invalidGrant: { status: 400, body: { error: "invalid_grant" } },
    invalidClient: { status: 400, body: { error: "invalid_client" } },
  },
  rateLimit: {
    answer: () => ({
      status: 429,
      retryAfter: "60",
      headers: { "x-rate-limit-problem": "minute" },
    }),
    retryAfterMs: 60_000,
  },
};

describeProviderContract(xero, imitation, ({ mock, refresh }) => {
  it("accepts the rotated-away refresh token again inside the grace: a lost answer is recoverable", async () => {
    const grant = mock().issueGrant(imitation.grant);
    expect(await refresh(grant.refreshToken)).toMatchObject({ outcome: "success" });
    const again = await refresh(grant.refreshToken);
    expect(again).toMatchObject({ outcome: "success" });
    expect(mock().grant(grant.grantId)).toMatchObject({ revoked: false });
    expect(mock().reuseCount).toBe(0);
  });
});
