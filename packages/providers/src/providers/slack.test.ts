import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "../build-authorization-url";
import { buildRefreshRequest } from "../build-refresh-request";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { buildValidationRequest, classifyValidation } from "../validation";
import { slack } from "./slack";

const settings = {
  provider: "slack",
  clientId: "2141029472.691202649728",
  clientSecret: "s",
} as const;

describe("slack", () => {
  it("posts a form with Basic client auth to oauth.v2.access", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "xoxe-1-rt" });
    expect(request.url).toBe("https://slack.com/api/oauth.v2.access");
    expect(request.headers.authorization).toMatch(/^Basic /);
    expect(request.body).toBe("grant_type=refresh_token&refresh_token=xoxe-1-rt");
  });

  it("asks for bot scopes comma-separated, user scopes through user_scope", () => {
    const url = new URL(
      buildAuthorizationUrl(
        {
          ...settings,
          scopes: ["chat:write", "channels:read"],
          authorizationParams: { user_scope: "search:read" },
        },
        { redirectUri: "https://e.example/cb", state: "st" },
      ),
    );
    expect(url.origin + url.pathname).toBe("https://slack.com/oauth/v2/authorize");
    expect(url.searchParams.get("scope")).toBe("chat:write,channels:read");
    expect(url.searchParams.get("user_scope")).toBe("search:read");
  });

  it("reads auth.test's 200 ok:false as a dead token", () => {
    const request = buildValidationRequest(settings, "xoxe.xoxb-1", undefined);
    expect(request?.request.url).toBe("https://slack.com/api/auth.test");
    const now = new Date();
    const dead = { status: 200, headers: {}, body: '{"ok":false,"error":"invalid_auth"}' };
    expect(classifyValidation("identity", dead, now, request?.okField)).toEqual({ valid: false });
    const alive = { status: 200, headers: {}, body: '{"ok":true,"team_id":"T1"}' };
    expect(classifyValidation("identity", alive, now, request?.okField)).toMatchObject({
      valid: true,
    });
  });
});

/** Token rotation: 12-hour bot tokens, errors as HTTP 200 {"ok": false}. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 43_200 },
  answers: {
    successFields: () => ({
      ok: true,
      token_type: "bot",
      app_id: "A0KRD7HC3",
      bot_user_id: "U0KRQLJ9H",
      team: { id: "T9TK3CUKW", name: "Slack Softball Team" },
      enterprise: null,
      is_enterprise_install: false,
    }),
    invalidGrant: { status: 200, body: { ok: false, error: "invalid_refresh_token" } },
    invalidClient: { status: 200, body: { ok: false, error: "bad_client_secret" } },
  },
  success: () => ({ tokenType: "bot" }),
  rateLimit: {
    answer: () => ({ status: 429, retryAfter: "30", body: { ok: false, error: "ratelimited" } }),
    retryAfterMs: 30_000,
  },
  quirks: [
    {
      name: "reads ok:false ratelimited with Retry-After as a rate limit, whatever the status",
      answer: () => ({ status: 200, retryAfter: "12", body: { ok: false, error: "ratelimited" } }),
      expected: { outcome: "rate_limited", retryAfterMs: 12_000 },
    },
    {
      name: "retries ok:false internal_error",
      answer: () => ({ status: 200, body: { ok: false, error: "internal_error" } }),
      expected: { outcome: "transient", errorCode: "internal_error" },
    },
    {
      name: "never mistakes ok:false for a token, even with a token-looking field",
      answer: () => ({
        status: 200,
        body: { ok: false, error: "invalid_client_id", access_token: "xoxe.xoxb-stale" },
      }),
      expected: { outcome: "invalid_client" },
    },
  ],
};

describeProviderContract(slack, imitation);
