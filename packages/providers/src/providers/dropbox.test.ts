import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { dropbox } from "./dropbox";

describe("dropbox", () => {
  it("posts the grant to api.dropboxapi.com; the refresh token is kept", () => {
    const request = buildRefreshRequest(
      { provider: "dropbox", clientId: "abcdefghijklmno", clientSecret: "s" },
      { refreshToken: "rt" },
    );
    expect(request.url).toBe("https://api.dropboxapi.com/oauth2/token");
    expect(dropbox.rotatesRefreshToken).toBe(false);
  });
});

/** Dropbox: four-hour access tokens, a long-lived refresh token absent from answers. */
const imitation: ProviderImitation = {
  grant: { omitRefreshToken: true, accessTokenTtlSeconds: 14_400 },
  answers: {
    invalidGrant: {
      status: 400,
      body: { error: "invalid_grant", error_description: "refresh token is invalid or revoked" },
    },
    invalidClient: {
      status: 400,
      body: { error: "invalid_client", error_description: "Invalid client_id or client_secret" },
    },
  },
  rateLimit: {
    // Dropbox's 429 body names the reason as an object; the wait is Retry-After.
    answer: () => ({
      status: 429,
      retryAfter: "300",
      body: { error_summary: "too_many_requests/..", error: { ".tag": "too_many_requests" } },
    }),
    retryAfterMs: 300_000,
  },
  quirks: [
    {
      name: "reads an error object (not a string) in a 429 as no error code, still a rate limit",
      answer: () => ({
        status: 429,
        body: { error: { ".tag": "too_many_write_operations" }, error_summary: "too_many_write" },
      }),
      expected: { outcome: "rate_limited", errorCode: "http_429", retryAfterMs: null },
    },
  ],
};

describeProviderContract(dropbox, imitation);
