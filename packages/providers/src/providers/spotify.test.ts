import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { spotify } from "./spotify";

const now = new Date("2026-03-01T12:00:00.000Z");

describe("spotify", () => {
  it("posts with client_secret_basic to accounts.spotify.com", () => {
    const request = buildRefreshRequest(
      { provider: "spotify", clientId: "spotify-client", clientSecret: "spotify-secret" },
      { refreshToken: "AQD-rt" },
    );
    expect(request).toEqual({
      url: "https://accounts.spotify.com/api/token",
      method: "POST",
      headers: {
        accept: "application/json",
        authorization: `Basic ${Buffer.from("spotify-client:spotify-secret").toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "grant_type=refresh_token&refresh_token=AQD-rt",
    });
  });

  it("stores a new refresh token when one is returned", () => {
    const result = classifyAnswer(
      "spotify",
      {
        status: 200,
        headers: {},
        body: JSON.stringify({
          access_token: "BQD-new",
          token_type: "Bearer",
          scope: "user-read-private user-read-email",
          expires_in: 3600,
          refresh_token: "AQD-rt-2",
        }),
      },
      now,
    );
    expect(result).toMatchObject({
      outcome: "success",
      refreshToken: "AQD-rt-2",
      scope: "user-read-private user-read-email",
    });
  });

  it("maps a revoked refresh token and a 429 with Retry-After seconds", () => {
    const revoked = classifyAnswer(
      "spotify",
      {
        status: 400,
        headers: {},
        body: '{"error":"invalid_grant","error_description":"Refresh token revoked"}',
      },
      now,
    );
    expect(revoked).toEqual({
      outcome: "invalid_grant",
      errorCode: "invalid_grant",
      message: "Refresh token revoked",
    });
    const limited = classifyAnswer(
      "spotify",
      { status: 429, headers: { "retry-after": "13" }, body: "" },
      now,
    );
    expect(limited).toMatchObject({ outcome: "rate_limited", retryAfterMs: 13_000 });
  });
});

/** Spotify: a new refresh token sometimes, none at other times; 429 with Retry-After. */
const imitation: ProviderImitation = {
  grant: { scope: "user-read-email" },
  answers: {
    invalidGrant: {
      status: 400,
      body: { error: "invalid_grant", error_description: "Invalid refresh token" },
    },
    invalidClient: {
      status: 400,
      body: { error: "invalid_client", error_description: "Invalid client secret" },
    },
  },
  success: () => ({ scope: "user-read-email" }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "7" }), retryAfterMs: 7_000 },
  quirks: [
    {
      name: "answers without refresh_token at times: the stored one stays",
      answer: () => ({
        status: 200,
        body: { access_token: "BQ-new", token_type: "Bearer", expires_in: 3600, scope: "" },
      }),
      expected: { outcome: "success", refreshToken: null },
    },
  ],
};

describeProviderContract(spotify, imitation);
