import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";

const now = new Date("2026-03-01T12:00:00.000Z");

describe("oauth2 (generic)", () => {
  it("posts to the integration's URL with client_secret_basic and never sends scope", () => {
    const request = buildRefreshRequest(
      {
        provider: "oauth2",
        clientId: "app",
        clientSecret: "pw",
        tokenUrl: "https://id.example.org/oauth2/token?tenant=a",
        scopes: ["read", "write"],
      },
      { refreshToken: "rt" },
    );
    expect(request.url).toBe("https://id.example.org/oauth2/token?tenant=a");
    expect(request.headers.authorization).toBe(`Basic ${btoa("app:pw")}`);
    expect(request.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(request.body).toBe("grant_type=refresh_token&refresh_token=rt");
  });

  it("uses the JSON body format when the integration asks for it (Atlassian, Notion)", () => {
    const request = buildRefreshRequest(
      {
        provider: "oauth2",
        clientId: "app",
        clientSecret: "pw",
        tokenUrl: "https://auth.atlassian.com/oauth/token",
        clientAuth: "body",
        bodyFormat: "json",
      },
      { refreshToken: "rt" },
    );
    expect(request.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(request.body)).toEqual({
      grant_type: "refresh_token",
      refresh_token: "rt",
      client_id: "app",
      client_secret: "pw",
    });
  });

  it("keeps the app values SPEC names (instance_url, api_domain) from an answer, nothing else", () => {
    const result = classifyAnswer(
      "oauth2",
      {
        status: 200,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          access_token: "at",
          expires_in: 3600,
          instance_url: "https://acme.example.com",
          api_domain: "https://api.example.com",
          id: "https://id.example.com/005",
        }),
      },
      now,
    );
    expect(result).toMatchObject({
      outcome: "success",
      appValues: {
        instance_url: "https://acme.example.com",
        api_domain: "https://api.example.com",
      },
    });
    expect(result.outcome === "success" && result.appValues).not.toHaveProperty("id");
  });

  it("classifies Atlassian's 403 invalid_grant as a dead grant", () => {
    const result = classifyAnswer(
      "oauth2",
      {
        status: 403,
        headers: { "content-type": "application/json" },
        body: '{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}',
      },
      now,
    );
    expect(result).toEqual({
      outcome: "invalid_grant",
      errorCode: "invalid_grant",
      message: "Unknown or invalid refresh token.",
    });
  });
});
