import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "../build-authorization-url";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { x } from "./x";

const settings = {
  provider: "x",
  clientId: "rG9n6402A3dbUJKzXTNX4oWHJ",
  clientSecret: "xx",
} as const;

describe("x", () => {
  it("posts a form with Basic client auth to api.x.com", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "bWRWa-rt" });
    expect(request.url).toBe("https://api.x.com/2/oauth2/token");
    expect(request.headers.authorization).toMatch(/^Basic /);
    expect(request.body).toBe("grant_type=refresh_token&refresh_token=bWRWa-rt");
  });

  it("asks for offline.access with PKCE", () => {
    const url = new URL(
      buildAuthorizationUrl(
        { ...settings, scopes: ["tweet.read", "users.read"] },
        { redirectUri: "https://e.example/cb", state: "st", codeVerifier: "v".repeat(43) },
      ),
    );
    expect(url.origin + url.pathname).toBe("https://x.com/i/oauth2/authorize");
    expect(url.searchParams.get("scope")).toBe("tweet.read users.read offline.access");
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
  });
});

/** Single-use refresh tokens; a used one is `400 invalid_request`; epoch reset header. */
const imitation: ProviderImitation = {
  grant: {
    rotate: true,
    accessTokenTtlSeconds: 7200,
    scope: "tweet.read users.read offline.access",
  },
  answers: {
    invalidGrant: {
      status: 400,
      body: {
        error: "invalid_request",
        error_description: "Value passed for the token was invalid.",
      },
    },
    invalidClient: {
      status: 401,
      body: {
        error: "unauthorized_client",
        error_description: "Missing valid authorization header",
      },
    },
  },
  success: () => ({ scope: "tweet.read users.read offline.access" }),
  rateLimit: {
    answer: (now) => ({
      status: 429,
      headers: {
        "x-rate-limit-limit": "300",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": String(now.getTime() / 1000 + 900),
      },
      body: {
        title: "Too Many Requests",
        detail: "Too Many Requests",
        type: "about:blank",
        status: 429,
      },
    }),
    retryAfterMs: 900_000,
  },
  quirks: [
    {
      name: "keeps other invalid_request answers unknown: only a refused token ends the grant",
      answer: () => ({
        status: 400,
        body: {
          error: "invalid_request",
          error_description: "Missing required parameter [grant_type].",
        },
      }),
      expected: { outcome: "unknown", errorCode: "invalid_request" },
    },
  ],
};

describeProviderContract(x, imitation);
