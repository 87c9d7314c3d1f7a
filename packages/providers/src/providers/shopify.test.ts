import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "../build-authorization-url";
import { buildRefreshRequest } from "../build-refresh-request";
import { ProviderConfigError } from "../errors";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { shopify } from "./shopify";

const settings = { provider: "shopify", clientId: "sh-id", clientSecret: "sh" } as const;
const urlFor = (shop?: unknown) =>
  buildRefreshRequest(settings, { refreshToken: "rt", metadata: { shop } }).url;

describe("shopify", () => {
  it("refreshes on the shop's own host, asking for an expiring token", () => {
    const request = buildRefreshRequest(settings, {
      refreshToken: "shprt_1",
      metadata: { shop: "acme-store.myshopify.com" },
    });
    expect(request.url).toBe("https://acme-store.myshopify.com/admin/oauth/access_token");
    expect(new URLSearchParams(request.body).get("expiring")).toBe("1");
  });

  it("needs a shop: there is no default host", () => {
    expect(() => urlFor(undefined)).toThrow(ProviderConfigError);
  });

  it("refuses every shop that is not one label under myshopify.com", () => {
    for (const shop of [
      "evil.com",
      "evil.com#",
      "a.myshopify.com.evil.com",
      "a.myshopify.com#.evil.com",
      "a.b.myshopify.com",
      "..",
      "../a.myshopify.com",
      "a.myshopify.com/..",
      "user@a.myshopify.com",
      "a@evil.com?.myshopify.com",
      "a.myshopify.com:443",
      "ａ.myshopify.com",
      "xn--a.myshopify.com.",
      "-a.myshopify.com",
      "A.MYSHOPIFY.COM",
      ["a.myshopify.com"],
    ]) {
      expect(() => urlFor(shop)).toThrow(ProviderConfigError);
    }
  });

  it("sends the merchant to the shop's consent page with comma-separated scopes", () => {
    const url = new URL(
      buildAuthorizationUrl(
        { ...settings, scopes: ["read_products", "write_orders"] },
        {
          redirectUri: "https://e.example/cb",
          state: "st",
          metadata: { shop: "acme.myshopify.com" },
        },
      ),
    );
    expect(url.origin + url.pathname).toBe("https://acme.myshopify.com/admin/oauth/authorize");
    expect(url.searchParams.get("scope")).toBe("read_products,write_orders");
  });
});

/** Expiring offline tokens: 1 hour, a refresh token replaced on each use. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 3600, scope: "read_products" },
  answers: {
    successFields: () => ({ refresh_token_expires_in: 7_776_000 }),
    invalidGrant: {
      status: 400,
      body: { error: "invalid_grant", error_description: "The refresh token is invalid." },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", error_description: "Client authentication failed." },
    },
  },
  success: (now) => ({
    scope: "read_products",
    refreshTokenExpiresAt: new Date(now.getTime() + 7_776_000_000),
  }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "2.0" }), retryAfterMs: 2_000 },
};

describeProviderContract(shopify, imitation);
