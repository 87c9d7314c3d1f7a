import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { github } from "./github";

const now = new Date("2026-03-01T12:00:00.000Z");

function ok(body: string, contentType = "application/json; charset=utf-8") {
  return { status: 200, headers: { "content-type": contentType }, body };
}

describe("github", () => {
  it("posts body credentials with Accept: application/json", () => {
    const request = buildRefreshRequest(
      { provider: "github", clientId: "Iv1.abc", clientSecret: "gh-secret" },
      { refreshToken: "ghr_rt" },
    );
    expect(request.url).toBe("https://github.com/login/oauth/access_token");
    expect(request.headers).toEqual({
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(Object.fromEntries(new URLSearchParams(request.body))).toEqual({
      grant_type: "refresh_token",
      refresh_token: "ghr_rt",
      client_id: "Iv1.abc",
      client_secret: "gh-secret",
    });
  });

  it("maps a GitHub App answer with rotated refresh token and its expiry", () => {
    const result = classifyAnswer(
      "github",
      ok(
        JSON.stringify({
          access_token: "ghu_new",
          expires_in: 28800,
          refresh_token: "ghr_new",
          refresh_token_expires_in: 15811200,
          scope: "",
          token_type: "bearer",
        }),
      ),
      now,
    );
    expect(result).toEqual({
      outcome: "success",
      accessToken: "ghu_new",
      refreshToken: "ghr_new",
      tokenType: "bearer",
      expiresAt: new Date("2026-03-01T20:00:00.000Z"),
      scope: null,
      refreshTokenExpiresAt: new Date(now.getTime() + 15_811_200_000),
    });
  });

  it("reads the form-encoded answer GitHub sends without Accept: application/json", () => {
    const result = classifyAnswer(
      "github",
      ok(
        "access_token=ghu_form&expires_in=28800&refresh_token=ghr_form&refresh_token_expires_in=15811200&scope=&token_type=bearer",
        "application/x-www-form-urlencoded; charset=utf-8",
      ),
      now,
    );
    expect(result).toMatchObject({
      outcome: "success",
      accessToken: "ghu_form",
      refreshToken: "ghr_form",
      expiresAt: new Date("2026-03-01T20:00:00.000Z"),
    });
  });

  it("maps bad_refresh_token sent as HTTP 200 to invalid_grant", () => {
    const result = classifyAnswer(
      "github",
      ok(
        JSON.stringify({
          error: "bad_refresh_token",
          error_description: "The refresh token passed is incorrect or expired.",
          error_uri:
            "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
        }),
      ),
      now,
    );
    expect(result).toEqual({
      outcome: "invalid_grant",
      errorCode: "bad_refresh_token",
      message: "The refresh token passed is incorrect or expired.",
    });
  });

  it("maps incorrect_client_credentials, also form-encoded, to invalid_client", () => {
    const result = classifyAnswer(
      "github",
      ok(
        "error=incorrect_client_credentials&error_description=The+client_id+and%2For+client_secret+passed+are+incorrect.",
        "application/x-www-form-urlencoded",
      ),
      now,
    );
    expect(result).toEqual({
      outcome: "invalid_client",
      errorCode: "incorrect_client_credentials",
      message: "The client_id and/or client_secret passed are incorrect.",
    });
  });

  it("has OAuth App tokens that never expire", () => {
    const result = classifyAnswer(
      "github",
      ok('{"access_token":"gho_x","token_type":"bearer","scope":"repo"}'),
      now,
    );
    expect(result).toMatchObject({ outcome: "success", expiresAt: null, refreshToken: null });
  });
});

/** GitHub App user tokens: single-use refresh tokens, errors as HTTP 200. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 28_800 },
  answers: {
    successFields: () => ({ refresh_token_expires_in: 15_811_200, token_type: "bearer" }),
    invalidGrant: {
      status: 200,
      body: {
        error: "bad_refresh_token",
        error_description: "The refresh token passed is incorrect or expired.",
      },
    },
    invalidClient: {
      status: 200,
      body: {
        error: "incorrect_client_credentials",
        error_description: "The client_id and/or client_secret passed are incorrect.",
      },
    },
  },
  success: (now) => ({
    tokenType: "bearer",
    refreshTokenExpiresAt: new Date(now.getTime() + 15_811_200_000),
  }),
  // Secondary rate limits: 429 (or 403) with Retry-After in seconds.
  rateLimit: { answer: () => ({ status: 429, retryAfter: "60" }), retryAfterMs: 60_000 },
  quirks: [
    {
      name: "reads the form-encoded answer sent without Accept: application/json",
      answer: () => ({
        status: 200,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "access_token=ghu_form&expires_in=28800&refresh_token=ghr_form&token_type=bearer",
      }),
      expected: { outcome: "success", accessToken: "ghu_form", refreshToken: "ghr_form" },
    },
  ],
};

describeProviderContract(github, imitation);
