import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "../build-authorization-url";
import { buildRefreshRequest } from "../build-refresh-request";
import { ProviderConfigError } from "../errors";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { okta } from "./okta";

const settings = { provider: "okta", clientId: "0oa1-id", clientSecret: "ok" } as const;
const urlFor = (metadata: Record<string, unknown>) =>
  buildRefreshRequest(settings, { refreshToken: "rt", metadata }).url;

describe("okta", () => {
  it("refreshes at the org's authorization server, `default` unless named", () => {
    expect(urlFor({ org: "acme.okta.com" })).toBe("https://acme.okta.com/oauth2/default/v1/token");
    expect(
      urlFor({ org: "acme.oktapreview.com", authorization_server: "aus1a2b3c4d5e6f7g8h9" }),
    ).toBe("https://acme.oktapreview.com/oauth2/aus1a2b3c4d5e6f7g8h9/v1/token");
  });

  it("needs an org: there is no default host", () => {
    expect(() => urlFor({})).toThrow(ProviderConfigError);
  });

  it("refuses orgs outside Okta's domains and servers that leave the path segment", () => {
    for (const org of [
      "evil.com",
      "evil.com#",
      "acme.okta.com.evil.com",
      "acme.okta.com:8443",
      "user@acme.okta.com",
      "..",
      "acme.okta.com/x",
      "ａcme.okta.com",
    ]) {
      expect(() => urlFor({ org })).toThrow(ProviderConfigError);
    }
    for (const authorization_server of ["..", "a/b", "default/../x", "a%2fb", "a?b", "a#b", ""]) {
      const metadata = { org: "acme.okta.com", authorization_server };
      // An empty value takes the default; anything else must be one plain segment.
      if (authorization_server === "") expect(urlFor(metadata)).toContain("/oauth2/default/");
      else expect(() => urlFor(metadata)).toThrow(ProviderConfigError);
    }
  });

  it("asks for offline_access at the same authorization server", () => {
    const url = new URL(
      buildAuthorizationUrl(
        { ...settings, scopes: ["openid"] },
        { redirectUri: "https://e.example/cb", state: "st", metadata: { org: "acme.okta.com" } },
      ),
    );
    expect(url.origin + url.pathname).toBe("https://acme.okta.com/oauth2/default/v1/authorize");
    expect(url.searchParams.get("scope")).toBe("openid offline_access");
  });
});

/** Rotation with a grace period; `X-Rate-Limit-Reset` in epoch seconds. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 3600, scope: "openid offline_access" },
  answers: {
    invalidGrant: {
      status: 400,
      body: {
        error: "invalid_grant",
        error_description: "The refresh token is invalid or expired.",
      },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", error_description: "Client authentication failed." },
    },
  },
  success: () => ({ scope: "openid offline_access" }),
  rateLimit: {
    answer: (now) => ({
      status: 429,
      headers: {
        "X-Rate-Limit-Limit": "600",
        "X-Rate-Limit-Remaining": "0",
        "X-Rate-Limit-Reset": String(now.getTime() / 1000 + 42),
      },
      body: {
        errorCode: "E0000047",
        errorSummary: "API call exceeded rate limit due to too many requests.",
      },
    }),
    retryAfterMs: 42_000,
  },
  quirks: [
    {
      name: "waits nothing extra when the reset it names has passed",
      answer: (now) => ({
        status: 429,
        headers: { "X-Rate-Limit-Reset": String(now.getTime() / 1000 - 5) },
      }),
      expected: { outcome: "rate_limited", retryAfterMs: 0 },
    },
  ],
};

describeProviderContract(okta, imitation);
