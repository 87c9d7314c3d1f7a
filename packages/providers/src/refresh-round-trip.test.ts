import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRefreshRequest } from "./build-refresh-request";
import { classifyAnswer } from "./classify-answer";
import { type MockProvider, startMockProvider } from "./testing/mock-provider";
import { sendTokenRequest } from "./testing/send-token-request";
import type { ClientAuth, IntegrationSettings } from "./types";

const SECRET = "s3cr%t:+/&é";
let provider: MockProvider;

beforeAll(async () => {
  provider = await startMockProvider({ clientId: "round trip", clientSecret: SECRET });
});

afterAll(async () => {
  await provider.close();
});

function settings(clientAuth: ClientAuth, bodyFormat: "form" | "json"): IntegrationSettings {
  return {
    provider: "oauth2",
    clientId: "round trip",
    clientSecret: SECRET,
    tokenUrl: provider.tokenUrl,
    clientAuth,
    bodyFormat,
  };
}

describe("buildRefreshRequest + classifyAnswer against the mock provider", () => {
  for (const clientAuth of ["basic", "body"] as const) {
    for (const bodyFormat of ["form", "json"] as const) {
      it(`refreshes a rotating grant with ${clientAuth} auth and a ${bodyFormat} body`, async () => {
        const grant = provider.issueGrant({ rotate: true, accessTokenTtlSeconds: 600 });
        const now = new Date();
        const request = buildRefreshRequest(
          settings(clientAuth, bodyFormat),
          { refreshToken: grant.refreshToken },
          { allowInsecureTokenUrls: true },
        );
        const result = classifyAnswer("oauth2", await sendTokenRequest(request), now);
        const state = provider.grant(grant.grantId);
        expect(result).toEqual({
          outcome: "success",
          accessToken: state?.accessToken,
          refreshToken: state?.refreshToken,
          tokenType: "Bearer",
          expiresAt: new Date(now.getTime() + 600_000),
          scope: null,
          refreshTokenExpiresAt: null,
        });
        expect(provider.received.at(-1)?.clientAuth).toBe(clientAuth);
      });
    }
  }

  it("classifies scripted failures", async () => {
    const grant = provider.issueGrant();
    provider.enqueue(
      { status: 429, retryAfter: "2" },
      { status: 503 },
      { status: 200, body: { error: "bad_refresh_token" } },
    );
    const outcomes = [];
    for (let i = 0; i < 3; i++) {
      const request = buildRefreshRequest(
        settings("basic", "form"),
        { refreshToken: grant.refreshToken },
        { allowInsecureTokenUrls: true },
      );
      outcomes.push(classifyAnswer("github", await sendTokenRequest(request), new Date()));
    }
    expect(outcomes).toEqual([
      expect.objectContaining({ outcome: "rate_limited", retryAfterMs: 2000 }),
      expect.objectContaining({ outcome: "transient", errorCode: "http_503" }),
      expect.objectContaining({ outcome: "invalid_grant", errorCode: "bad_refresh_token" }),
    ]);
  });
});
