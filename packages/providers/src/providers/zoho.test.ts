import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "../build-authorization-url";
import { buildRefreshRequest } from "../build-refresh-request";
import { ProviderConfigError } from "../errors";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { zoho } from "./zoho";

const settings = { provider: "zoho", clientId: "1000.ABC", clientSecret: "zo" } as const;
const urlFor = (location?: unknown) =>
  buildRefreshRequest(settings, { refreshToken: "1000.rt", metadata: { location } }).url;

describe("zoho", () => {
  it("refreshes at the data centre the callback named", () => {
    expect(urlFor(undefined)).toBe("https://accounts.zoho.com/oauth/v2/token");
    expect(urlFor("eu")).toBe("https://accounts.zoho.eu/oauth/v2/token");
    expect(urlFor("au")).toBe("https://accounts.zoho.com.au/oauth/v2/token");
    expect(urlFor("ca")).toBe("https://accounts.zohocloud.ca/oauth/v2/token");
  });

  it("refuses any location outside the fixed map, host fragments included", () => {
    for (const location of [
      "de",
      "evil.com",
      "evil.com#",
      "accounts.zoho.eu",
      "https://accounts.zoho.eu",
      "eu.evil.com",
      "..",
      "eu@evil.com",
      "ｅu",
      "eu:443",
      "toString",
      "__proto__",
    ]) {
      expect(() => urlFor(location)).toThrow(ProviderConfigError);
    }
  });

  it("asks for offline access with comma-separated scopes", () => {
    const url = new URL(
      buildAuthorizationUrl(
        { ...settings, scopes: ["ZohoCRM.modules.ALL", "ZohoCRM.settings.READ"] },
        { redirectUri: "https://e.example/cb", state: "st" },
      ),
    );
    expect(url.origin + url.pathname).toBe("https://accounts.zoho.com/oauth/v2/auth");
    expect(url.searchParams.get("access_type")).toBe("offline");
    expect(url.searchParams.get("scope")).toBe("ZohoCRM.modules.ALL,ZohoCRM.settings.READ");
  });
});

/** Errors as HTTP 200; throttling as a 200 "Access Denied"; the API domain to keep. */
const imitation: ProviderImitation = {
  grant: { omitRefreshToken: true, accessTokenTtlSeconds: 3600 },
  answers: {
    successFields: () => ({ api_domain: "https://www.zohoapis.eu", token_type: "Bearer" }),
    invalidGrant: { status: 200, body: { error: "invalid_code" } },
    invalidClient: { status: 200, body: { error: "invalid_client" } },
  },
  success: () => ({ appValues: { api_domain: "https://www.zohoapis.eu" } }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "60" }), retryAfterMs: 60_000 },
  quirks: [
    {
      name: "retries throttling reported as a 200 Access Denied, without stopping the grant",
      answer: () => ({
        status: 200,
        body: {
          error_description:
            "You have made too many requests continuously. Please try again after some time.",
          error: "Access Denied",
          status: "failure",
        },
      }),
      expected: { outcome: "transient", errorCode: "Access_Denied" },
    },
    {
      name: "reads a wrong client secret as the client's problem",
      answer: () => ({ status: 200, body: { error: "invalid_client_secret" } }),
      expected: { outcome: "invalid_client" },
    },
  ],
};

describeProviderContract(zoho, imitation);
