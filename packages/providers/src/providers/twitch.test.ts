import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { buildValidationRequest } from "../validation";
import { twitch } from "./twitch";

describe("twitch", () => {
  it("validates at /oauth2/validate with the OAuth scheme Twitch documents", () => {
    const request = buildValidationRequest(
      { provider: "twitch", clientId: "c", clientSecret: "s" },
      "at-1",
      undefined,
    );
    expect(request?.request).toMatchObject({
      url: "https://id.twitch.tv/oauth2/validate",
      method: "GET",
      headers: { authorization: "OAuth at-1" },
    });
  });

  it("posts body credentials to id.twitch.tv", () => {
    const request = buildRefreshRequest(
      { provider: "twitch", clientId: "hof5gwx0su6owfnys0nyan9c87zr6t", clientSecret: "tw" },
      { refreshToken: "eyJfaWQmNzMtNGCJ9%6VFV5LNrZFUj8oU231/3Aj" },
    );
    expect(request.url).toBe("https://id.twitch.tv/oauth2/token");
    expect(new URLSearchParams(request.body).get("refresh_token")).toBe(
      "eyJfaWQmNzMtNGCJ9%6VFV5LNrZFUj8oU231/3Aj",
    );
  });
});

/** Errors as {"status": 400, "message": "..."}; scopes as a JSON array. */
const imitation: ProviderImitation = {
  grant: { accessTokenTtlSeconds: 14_124 },
  answers: {
    successFields: () => ({
      scope: ["channel:read:subscriptions", "chat:read"],
      token_type: "bearer",
    }),
    invalidGrant: {
      status: 400,
      body: { error: "Bad Request", status: 400, message: "Invalid refresh token" },
    },
    invalidClient: { status: 403, body: { status: 403, message: "invalid client secret" } },
  },
  success: () => ({ scope: "channel:read:subscriptions chat:read" }),
  rateLimit: {
    answer: () => ({
      status: 429,
      retryAfter: "10",
      body: { error: "Too Many Requests", status: 429, message: "" },
    }),
    retryAfterMs: 10_000,
  },
  quirks: [
    {
      name: "reads an unknown client without an error field",
      answer: () => ({ status: 400, body: { status: 400, message: "invalid client" } }),
      expected: { outcome: "invalid_client", errorCode: "invalid_client" },
    },
    {
      name: "leaves an unrecognised message unknown rather than guessing",
      answer: () => ({ status: 400, body: { status: 400, message: "missing client secret" } }),
      expected: { outcome: "unknown", errorCode: "missing_client_secret" },
    },
  ],
};

describeProviderContract(twitch, imitation);
