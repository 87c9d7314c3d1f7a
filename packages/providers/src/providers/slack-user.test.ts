import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl } from "../build-authorization-url";
import { classifyAnswer } from "../classify-answer";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { slackUser } from "./slack-user";

const now = new Date("2026-03-01T12:00:00.000Z");

/** Slack's install answer with token rotation: the bot's tokens, and the user's in authed_user. */
const installAnswer = {
  status: 200,
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    ok: true,
    access_token: "xoxe.xoxb-bot",
    refresh_token: "xoxe-1-bot",
    expires_in: 43_200,
    token_type: "bot",
    scope: "chat:write",
    team: { id: "T1" },
    authed_user: {
      id: "U1",
      scope: "search:read",
      access_token: "xoxe.xoxp-user",
      refresh_token: "xoxe-1-user",
      expires_in: 43_200,
      token_type: "user",
    },
  }),
};

describe("slack_user", () => {
  it("takes the user's tokens from authed_user at the code exchange; slack takes the bot's", () => {
    expect(
      classifyAnswer("slack_user", installAnswer, now, { grant: "authorization_code" }),
    ).toMatchObject({
      outcome: "success",
      accessToken: "xoxe.xoxp-user",
      refreshToken: "xoxe-1-user",
      tokenType: "user",
      scope: "search:read",
    });
    expect(
      classifyAnswer("slack", installAnswer, now, { grant: "authorization_code" }),
    ).toMatchObject({
      accessToken: "xoxe.xoxb-bot",
      refreshToken: "xoxe-1-bot",
      tokenType: "bot",
    });
  });

  it("reads an install answer without a user token as malformed, never as the bot's", () => {
    const botOnly = { ...installAnswer, body: '{"ok":true,"access_token":"xoxe.xoxb-bot"}' };
    expect(
      classifyAnswer("slack_user", botOnly, now, { grant: "authorization_code" }),
    ).toMatchObject({
      outcome: "unknown",
      errorCode: "malformed_response",
    });
  });

  it("asks for user scopes in user_scope, comma-separated", () => {
    const url = new URL(
      buildAuthorizationUrl(
        { provider: "slack_user", clientId: "c", scopes: ["search:read", "users:read"] },
        { redirectUri: "https://e.example/cb", state: "st" },
      ),
    );
    expect(url.searchParams.get("user_scope")).toBe("search:read,users:read");
    expect(url.searchParams.has("scope")).toBe(false);
  });
});

/** A user token refreshed with its own refresh token: answered at the top level. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 43_200 },
  answers: {
    successFields: () => ({ ok: true, token_type: "user", team: { id: "T1" } }),
    invalidGrant: { status: 200, body: { ok: false, error: "invalid_refresh_token" } },
    invalidClient: { status: 200, body: { ok: false, error: "invalid_client_id" } },
  },
  success: () => ({ tokenType: "user" }),
  rateLimit: { answer: () => ({ status: 429, retryAfter: "3" }), retryAfterMs: 3_000 },
};

describeProviderContract(slackUser, imitation);
