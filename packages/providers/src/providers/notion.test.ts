import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { notion } from "./notion";

describe("notion", () => {
  it("posts the grant as JSON with Basic client credentials", () => {
    const request = buildRefreshRequest(
      { provider: "notion", clientId: "1d2d872b-594c-80a6-a3d5-0037d2a2b5f0", clientSecret: "s" },
      { refreshToken: "rt" },
    );
    expect(request.url).toBe("https://api.notion.com/v1/oauth/token");
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.headers.authorization).toMatch(/^Basic /);
    expect(JSON.parse(request.body)).toEqual({ grant_type: "refresh_token", refresh_token: "rt" });
  });
});

/** Notion: JSON bodies, a new access and refresh token on each refresh, workspace fields. */
const imitation: ProviderImitation = {
  grant: { rotate: true },
  answers: {
    successFields: () => ({
      bot_id: "3c90c3cc-0d44-4b50-8888-8dd25736052a",
      workspace_id: "3c90c3cc-0d44-4b50-8888-8dd25736052b",
      workspace_name: "Acme",
      owner: { type: "user" },
    }),
    invalidGrant: {
      status: 400,
      body: { error: "invalid_grant", error_description: "Invalid refresh token." },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", error_description: "Invalid client." },
    },
  },
  rateLimit: {
    answer: () => ({
      status: 429,
      retryAfter: "4",
      body: { object: "error", status: 429, code: "rate_limited", message: "Rate limited" },
    }),
    retryAfterMs: 4_000,
  },
  quirks: [
    {
      name: "reads Notion's own error shape (code, not error) as no known error",
      answer: () => ({
        status: 400,
        body: { object: "error", status: 400, code: "validation_error", message: "bad body" },
      }),
      expected: { outcome: "unknown", errorCode: "http_400" },
    },
  ],
};

describeProviderContract(notion, imitation);
