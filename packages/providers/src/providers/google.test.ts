import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { google } from "./google";

const now = new Date("2026-03-01T12:00:00.000Z");
const settings = {
  provider: "google",
  clientId: "123.apps.googleusercontent.com",
  clientSecret: "GOCSPX-secret",
  scopes: ["https://www.googleapis.com/auth/drive.readonly"],
} as const;

describe("google", () => {
  it("posts client credentials in the form body to oauth2.googleapis.com", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "1//0g-rt" });
    expect(request.url).toBe("https://oauth2.googleapis.com/token");
    expect(request.headers).toEqual({
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(Object.fromEntries(new URLSearchParams(request.body))).toEqual({
      grant_type: "refresh_token",
      refresh_token: "1//0g-rt",
      client_id: "123.apps.googleusercontent.com",
      client_secret: "GOCSPX-secret",
    });
  });

  it("keeps the old refresh token: Google's answer carries none", () => {
    const result = classifyAnswer(
      "google",
      {
        status: 200,
        headers: { "content-type": "application/json; charset=utf-8" },
        body: JSON.stringify({
          access_token: "ya29.a0-new",
          expires_in: 3599,
          scope: "https://www.googleapis.com/auth/drive.readonly",
          token_type: "Bearer",
        }),
      },
      now,
    );
    expect(result).toEqual({
      outcome: "success",
      accessToken: "ya29.a0-new",
      refreshToken: null,
      tokenType: "Bearer",
      expiresAt: new Date("2026-03-01T12:59:59.000Z"),
      scope: "https://www.googleapis.com/auth/drive.readonly",
      refreshTokenExpiresAt: null,
    });
  });

  it("maps invalid_grant and a deleted client", () => {
    const expired = classifyAnswer(
      "google",
      {
        status: 400,
        headers: {},
        body: '{"error":"invalid_grant","error_description":"Token has been expired or revoked."}',
      },
      now,
    );
    expect(expired).toMatchObject({ outcome: "invalid_grant", errorCode: "invalid_grant" });
    const deleted = classifyAnswer(
      "google",
      {
        status: 401,
        headers: {},
        body: '{"error":"deleted_client","error_description":"The OAuth client was deleted."}',
      },
      now,
    );
    expect(deleted).toEqual({
      outcome: "invalid_client",
      errorCode: "deleted_client",
      message: "The OAuth client was deleted.",
    });
  });
});

/** Google: the refresh token is kept (absent from answers); a deleted client is the app's problem. */
const imitation: ProviderImitation = {
  grant: { omitRefreshToken: true, scope: "openid" },
  answers: {
    invalidGrant: {
      status: 400,
      body: { error: "invalid_grant", error_description: "Token has been expired or revoked." },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", error_description: "The OAuth client was not found." },
    },
  },
  success: () => ({ scope: "openid" }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "30" }), retryAfterMs: 30_000 },
  quirks: [
    {
      name: "maps deleted_client, which answers every grant of the client, to invalid_client",
      answer: () => ({
        status: 401,
        body: { error: "deleted_client", error_description: "The OAuth client was deleted." },
      }),
      expected: { outcome: "invalid_client", errorCode: "deleted_client" },
    },
  ],
};

describeProviderContract(google, imitation);
