import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { discord } from "./discord";

const now = new Date("2026-03-01T12:00:00.000Z");
const settings = { provider: "discord", clientId: "1234567890", clientSecret: "d1sc0rd" } as const;

describe("discord", () => {
  it("posts a form body with client_secret_basic to the v10 API", () => {
    const request = buildRefreshRequest(settings, {
      refreshToken: "D43f5y0ahjqew82jZ4NViEr2YafMKhue",
    });
    expect(request.url).toBe("https://discord.com/api/v10/oauth2/token");
    expect(request.headers).toEqual({
      accept: "application/json",
      authorization: `Basic ${Buffer.from("1234567890:d1sc0rd").toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(request.body).toBe(
      "grant_type=refresh_token&refresh_token=D43f5y0ahjqew82jZ4NViEr2YafMKhue",
    );
  });

  it("can send credentials in the body instead", () => {
    const request = buildRefreshRequest(
      { ...settings, clientAuth: "body" },
      { refreshToken: "rt" },
    );
    expect(request.headers.authorization).toBeUndefined();
    expect(new URLSearchParams(request.body).get("client_secret")).toBe("d1sc0rd");
  });

  it("maps the rotated refresh token and the 7-day lifetime", () => {
    const result = classifyAnswer(
      "discord",
      {
        status: 200,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          access_token: "6qrZcUqja7812RVdnEKjpzOL4CvHBFG",
          token_type: "Bearer",
          expires_in: 604800,
          refresh_token: "D43f5y0ahjqew82jZ4NViEr2YafMKhue-2",
          scope: "identify",
        }),
      },
      now,
    );
    expect(result).toMatchObject({
      outcome: "success",
      refreshToken: "D43f5y0ahjqew82jZ4NViEr2YafMKhue-2",
      expiresAt: new Date("2026-03-08T12:00:00.000Z"),
      scope: "identify",
    });
  });

  it("reads the float retry_after of a 429 body when Retry-After is absent", () => {
    const result = classifyAnswer(
      "discord",
      {
        status: 429,
        headers: { "content-type": "application/json", "x-ratelimit-scope": "user" },
        body: '{"message":"You are being rate limited.","retry_after":64.57,"global":false}',
      },
      now,
    );
    expect(result).toEqual({
      outcome: "rate_limited",
      errorCode: "http_429",
      message: "provider is rate limiting requests (HTTP 429)",
      retryAfterMs: 64_570,
    });
  });

  it("reads the bucket headers when neither Retry-After nor retry_after is sent", () => {
    const headers = { "X-RateLimit-Reset-After": "1.5", "X-RateLimit-Reset": "1772366410.25" };
    expect(classifyAnswer("discord", { status: 429, headers, body: "" }, now)).toMatchObject({
      retryAfterMs: 1_500,
    });
    const epochOnly = { "X-RateLimit-Reset": String(now.getTime() / 1000 + 7.25) };
    expect(
      classifyAnswer("discord", { status: 429, headers: epochOnly, body: "" }, now),
    ).toMatchObject({ retryAfterMs: 7_250 });
  });

  it("prefers the Retry-After header", () => {
    const result = classifyAnswer(
      "discord",
      { status: 429, headers: { "Retry-After": "65" }, body: '{"retry_after":64.57}' },
      now,
    );
    expect(result).toMatchObject({ retryAfterMs: 65_000 });
  });
});

/** Discord: rotating refresh tokens; rate limits as JSON `retry_after` (float seconds). */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 604_800, scope: "identify" },
  answers: {
    invalidGrant: { status: 400, body: { error: "invalid_grant" } },
    invalidClient: { status: 401, body: { error: "invalid_client" } },
  },
  success: () => ({ scope: "identify" }),
  rateLimit: {
    answer: () => ({
      status: 429,
      retryAfter: "2",
      headers: { "x-ratelimit-reset-after": "1.5", "x-ratelimit-scope": "user" },
      body: { message: "You are being rate limited.", retry_after: 1.5, global: false },
    }),
    // Retry-After wins over the body's float; both say the same within a second.
    retryAfterMs: 2_000,
  },
  quirks: [
    {
      name: "reads the wait from the JSON body's float retry_after when no header says it",
      answer: () => ({
        status: 429,
        body: { message: "You are being rate limited.", retry_after: 0.75, global: true },
      }),
      expected: { outcome: "rate_limited", retryAfterMs: 750 },
    },
  ],
};

describeProviderContract(discord, imitation);
