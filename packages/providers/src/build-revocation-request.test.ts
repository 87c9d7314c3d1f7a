import { describe, expect, it } from "vitest";
import {
  buildRevocationRequest,
  classifyRevocationAnswer,
  revocationRuleOf,
  revocationTokenType,
} from "./build-revocation-request";
import { PROVIDERS } from "./registry";
import type { IntegrationSettings, RevocationRule } from "./types";

const settings = (overrides: Partial<IntegrationSettings> = {}): IntegrationSettings => ({
  provider: "oauth2",
  clientId: "client:id",
  clientSecret: "s3cret%",
  ...overrides,
});

function rule(provider: IntegrationSettings["provider"], revocationUrl?: string): RevocationRule {
  const found = revocationRuleOf({ provider, clientId: "c", revocationUrl: revocationUrl ?? null });
  if (found === null) throw new Error(`${provider} has no revocation`);
  return found;
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;

describe("revocation coverage", () => {
  it("is stated for every catalog provider", () => {
    const covered = Object.fromEntries(
      Object.values(PROVIDERS).map((definition) => [
        definition.id,
        definition.revocation?.kind ?? null,
      ]),
    );
    expect(covered).toEqual({
      oauth2: "rfc7009",
      google: "rfc7009",
      github: "github_grant",
      discord: "rfc7009",
      microsoft: null,
      spotify: null,
      amazon: null,
      xero: "rfc7009",
      zoom: "rfc7009",
      dropbox: "bearer",
      linkedin: "rfc7009",
      notion: "rfc7009",
      box: "rfc7009",
      pinterest: null,
      slack: null,
      slack_user: null,
      salesforce: "rfc7009",
      hubspot: null,
      intuit: null,
      atlassian: null,
      shopify: null,
      strava: null,
      twitch: "rfc7009",
      reddit: "rfc7009",
      zoho: "rfc7009",
      okta: "rfc7009",
      x: "rfc7009",
    });
  });

  it("gives a generic integration none without revocationUrl", () => {
    expect(revocationRuleOf({ provider: "oauth2", clientId: "c", revocationUrl: null })).toBeNull();
    expect(revocationRuleOf({ provider: "oauth2", clientId: "c", revocationUrl: " " })).toBeNull();
  });
});

describe("buildRevocationRequest", () => {
  it("Dropbox: a POST without body, the access token as Bearer", () => {
    const request = buildRevocationRequest(settings({ provider: "dropbox" }), rule("dropbox"), {
      value: "sl.at-1",
      type: "access_token",
    });
    expect(request).toEqual({
      url: "https://api.dropboxapi.com/2/auth/token/revoke",
      method: "POST",
      headers: { accept: "application/json", authorization: "Bearer sl.at-1" },
      body: "",
    });
    expect(revocationTokenType(rule("dropbox"), true)).toBe("access_token");
  });

  it("Notion: the token as JSON, the client as Basic", () => {
    const request = buildRevocationRequest(settings({ provider: "notion" }), rule("notion"), {
      value: "rt-1",
      type: "refresh_token",
    });
    expect(request.url).toBe("https://api.notion.com/v1/oauth/revoke");
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.headers.authorization).toMatch(/^Basic /);
    expect(JSON.parse(request.body)).toEqual({ token: "rt-1", token_type_hint: "refresh_token" });
  });

  it("Google: RFC 7009 form, no client authentication", () => {
    const request = buildRevocationRequest(settings({ provider: "google" }), rule("google"), {
      value: "rt-1",
      type: "refresh_token",
    });
    expect(request).toEqual({
      url: "https://oauth2.googleapis.com/revoke",
      method: "POST",
      headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
      body: "token=rt-1&token_type_hint=refresh_token",
    });
  });

  it("Discord: RFC 7009 form with client_secret_basic, as at its token endpoint", () => {
    const request = buildRevocationRequest(settings({ provider: "discord" }), rule("discord"), {
      value: "rt-2",
      type: "refresh_token",
    });
    expect(request.url).toBe("https://discord.com/api/oauth2/token/revoke");
    expect(request.headers.authorization).toBe(basic("client:id", "s3cret%"));
    expect(new URLSearchParams(request.body).get("client_secret")).toBeNull();
  });

  it("GitHub: DELETE of the app grant, basic auth, the access token in a JSON body", () => {
    const github = rule("github");
    expect(revocationTokenType(github, true)).toBe("access_token");
    const request = buildRevocationRequest(
      settings({ provider: "github", clientId: "Iv1.abc" }),
      github,
      { value: "gho_x", type: "access_token" },
    );
    expect(request).toMatchObject({
      url: "https://api.github.com/applications/Iv1.abc/grant",
      method: "DELETE",
      body: '{"access_token":"gho_x"}',
    });
    expect(request.headers.authorization).toBe(basic("Iv1.abc", "s3cret%"));
  });

  it("generic: the integration's URL and client authentication, held to https", () => {
    const url = "https://id.example.com/oauth/revoke";
    const request = buildRevocationRequest(
      settings({ clientAuth: "body", revocationUrl: url }),
      rule("oauth2", url),
      { value: "at-1", type: "access_token" },
    );
    expect(request.url).toBe(url);
    expect(Object.fromEntries(new URLSearchParams(request.body))).toEqual({
      token: "at-1",
      token_type_hint: "access_token",
      client_id: "client:id",
      client_secret: "s3cret%",
    });
    expect(() =>
      buildRevocationRequest(
        settings({ revocationUrl: "http://id.example.com/revoke" }),
        rule("oauth2", "http://id.example.com/revoke"),
        { value: "at-1", type: "access_token" },
      ),
    ).toThrow(/revocation URL must use https/);
  });
});

describe("classifyRevocationAnswer", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  const answer = (status: number, body = "", headers: Record<string, string> = {}) =>
    classifyRevocationAnswer({ status, headers, body }, now, 3_600_000);

  it("reads 2xx as revoked, 400 invalid_token / unsupported_token_type as already dead", () => {
    expect(answer(200)).toEqual({ outcome: "revoked" });
    expect(answer(204)).toEqual({ outcome: "revoked" });
    expect(answer(400, '{"error":"invalid_token"}')).toEqual({
      outcome: "already_dead",
      errorCode: "invalid_token",
    });
    expect(answer(400, '{"error":"unsupported_token_type"}').outcome).toBe("already_dead");
  });

  it("reads GitHub's 404 and 422 on the grant DELETE as already revoked, not failed", () => {
    const github = (status: number) =>
      classifyRevocationAnswer({ status, headers: {}, body: "" }, now, 3_600_000, "github_grant");
    expect(github(404)).toEqual({ outcome: "already_dead", errorCode: "http_404" });
    expect(github(422)).toEqual({ outcome: "already_dead", errorCode: "http_422" });
    expect(github(204)).toEqual({ outcome: "revoked" });
    expect(github(401)).toEqual({ outcome: "failed", errorCode: "http_401" });
    // An RFC 7009 endpoint's 404 is no such statement.
    expect(answer(404)).toEqual({ outcome: "failed", errorCode: "http_404" });
  });

  it("retries 503 at its Retry-After, and 429 and 5xx", () => {
    expect(answer(503, "", { "retry-after": "12" })).toEqual({
      outcome: "retry",
      errorCode: "http_503",
      retryAfterMs: 12_000,
    });
    expect(answer(502)).toEqual({ outcome: "retry", errorCode: "http_502", retryAfterMs: null });
    expect(answer(429).outcome).toBe("retry");
  });

  it("fails for good on other refusals, keeping only a word-shaped error code", () => {
    expect(answer(401, '{"error":"invalid_client"}')).toEqual({
      outcome: "failed",
      errorCode: "invalid_client",
    });
    expect(answer(400, '{"error":"token rt-secret was bad"}')).toEqual({
      outcome: "failed",
      errorCode: "http_400",
    });
  });
});
