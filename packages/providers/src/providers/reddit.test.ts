import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { buildValidationRequest } from "../validation";
import { reddit } from "./reddit";

const settings = { provider: "reddit", clientId: "p-jcoLKBynTLew", clientSecret: "rd" } as const;

describe("reddit", () => {
  it("sends a User-Agent unique to the app, with Basic client auth", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "rt" });
    expect(request.url).toBe("https://www.reddit.com/api/v1/access_token");
    expect(request.headers["user-agent"]).toBe(
      "server:evergreen-p-jcoLKBynTLew:1.0 (OAuth token refresh)",
    );
    expect(request.headers.authorization).toMatch(/^Basic /);
  });

  it("keeps control characters of a client id out of the header", () => {
    const request = buildRefreshRequest(
      { ...settings, clientId: "id\r\nx-injected: 1" },
      { refreshToken: "rt" },
    );
    expect(request.headers["user-agent"]).not.toMatch(/[\r\n]/);
  });

  it("sends the same User-Agent when validating", () => {
    const request = buildValidationRequest(settings, "at", undefined);
    expect(request?.request.headers["user-agent"]).toContain("p-jcoLKBynTLew");
  });
});

/** Permanent grants; `x-ratelimit-reset` is seconds from now. */
const imitation: ProviderImitation = {
  grant: { omitRefreshToken: true, accessTokenTtlSeconds: 86_400, scope: "identity read" },
  answers: {
    invalidGrant: { status: 400, body: { error: "invalid_grant" } },
    invalidClient: { status: 401, body: { message: "Unauthorized", error: 401 } },
  },
  success: () => ({ scope: "identity read" }),
  rateLimit: {
    answer: () => ({
      status: 429,
      headers: {
        "X-Ratelimit-Used": "100",
        "X-Ratelimit-Remaining": "0.0",
        "X-Ratelimit-Reset": "312",
      },
      body: { message: "Too Many Requests", error: 429 },
    }),
    retryAfterMs: 312_000,
  },
};

describeProviderContract(reddit, imitation);
