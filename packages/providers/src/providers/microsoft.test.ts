import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";
import { ProviderConfigError } from "../errors";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import type { IntegrationSettings } from "../types";
import { microsoft } from "./microsoft";

const now = new Date("2026-03-01T12:00:00.000Z");
const settings: IntegrationSettings = {
  provider: "microsoft",
  clientId: "00000000-aaaa-bbbb-cccc-000000000000",
  clientSecret: "ms~secret",
  scopes: ["https://graph.microsoft.com/Mail.Read", "User.Read"],
};

function aadError(error: string, code: string) {
  return {
    status: 400,
    headers: { "content-type": "application/json; charset=utf-8" },
    body: JSON.stringify({
      error,
      error_description: `${code}: something happened.\r\nTrace ID: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\r\nTimestamp: 2026-03-01 12:00:00Z`,
      error_codes: [Number(code.replace("AADSTS", ""))],
    }),
  };
}

describe("microsoft", () => {
  it("posts to the common tenant with body credentials and scopes plus offline_access", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "0.AAAA-rt" });
    expect(request.url).toBe("https://login.microsoftonline.com/common/oauth2/v2.0/token");
    expect(request.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(request.headers.authorization).toBeUndefined();
    expect(Object.fromEntries(new URLSearchParams(request.body))).toEqual({
      grant_type: "refresh_token",
      refresh_token: "0.AAAA-rt",
      scope: "https://graph.microsoft.com/Mail.Read User.Read offline_access",
      client_id: "00000000-aaaa-bbbb-cccc-000000000000",
      client_secret: "ms~secret",
    });
  });

  it("does not repeat offline_access and omits scope when none are configured", () => {
    const withOffline = buildRefreshRequest(
      { ...settings, scopes: ["offline_access User.Read"] },
      { refreshToken: "rt" },
    );
    expect(new URLSearchParams(withOffline.body).get("scope")).toBe("offline_access User.Read");
    const none = buildRefreshRequest({ ...settings, scopes: [] }, { refreshToken: "rt" });
    expect(new URLSearchParams(none.body).has("scope")).toBe(false);
  });

  it("takes the tenant from connection metadata", () => {
    const request = buildRefreshRequest(settings, {
      refreshToken: "rt",
      metadata: { tenant: "contoso.onmicrosoft.com" },
    });
    expect(request.url).toBe(
      "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
    );
  });

  it("refuses a tenant that would change the host or path", () => {
    for (const tenant of ["evil.com/x", "..", "a@evil.com", "a?b", "x#y", "%2e%2e", 42, ""]) {
      const build = () =>
        buildRefreshRequest(settings, { refreshToken: "rt", metadata: { tenant } });
      if (tenant === "") {
        // An empty value means "not set": the default tenant applies.
        expect(build().url).toContain("/common/");
        continue;
      }
      expect(build).toThrow(ProviderConfigError);
    }
  });

  it("maps a rotated refresh token in the answer", () => {
    const result = classifyAnswer(
      "microsoft",
      {
        status: 200,
        headers: {},
        body: JSON.stringify({
          token_type: "Bearer",
          scope: "https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/User.Read",
          expires_in: 4753,
          ext_expires_in: 4753,
          access_token: "eyJ0eXAi.new",
          refresh_token: "0.AAAA-rt-2",
        }),
      },
      now,
    );
    expect(result).toMatchObject({
      outcome: "success",
      accessToken: "eyJ0eXAi.new",
      refreshToken: "0.AAAA-rt-2",
      expiresAt: new Date(now.getTime() + 4753_000),
    });
  });

  it("treats AADSTS50196 (a throttle sent as invalid_grant) as transient", () => {
    const result = classifyAnswer("microsoft", aadError("invalid_grant", "AADSTS50196"), now);
    expect(result).toMatchObject({ outcome: "transient", errorCode: "invalid_grant" });
    if (result.outcome === "success") throw new Error("expected an error");
    expect(result.message.startsWith("AADSTS50196: something happened. Trace ID:")).toBe(true);
  });

  it("maps expired refresh tokens and required interaction to invalid_grant", () => {
    expect(
      classifyAnswer("microsoft", aadError("invalid_grant", "AADSTS700082"), now),
    ).toMatchObject({ outcome: "invalid_grant" });
    expect(
      classifyAnswer("microsoft", aadError("interaction_required", "AADSTS50076"), now),
    ).toMatchObject({ outcome: "invalid_grant", errorCode: "interaction_required" });
    expect(
      classifyAnswer("microsoft", aadError("invalid_client", "AADSTS7000215"), now),
    ).toMatchObject({ outcome: "invalid_client" });
  });

  it("honours 429 Retry-After", () => {
    const result = classifyAnswer(
      "microsoft",
      { status: 429, headers: { "Retry-After": "30" }, body: "" },
      now,
    );
    expect(result).toMatchObject({ outcome: "rate_limited", retryAfterMs: 30_000 });
  });
});

/** Entra ID v2: a new refresh token each time; AADSTS50196 is a throttle in invalid_grant's clothes. */
const imitation: ProviderImitation = {
  grant: { rotate: true, accessTokenTtlSeconds: 4_523 },
  answers: {
    invalidGrant: {
      status: 400,
      body: {
        error: "invalid_grant",
        error_description:
          "AADSTS70008: The provided authorization code or refresh token has expired.",
      },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", error_description: "AADSTS7000215: Invalid client secret." },
    },
  },
  rateLimit: { answer: () => ({ status: 429, retryAfter: "12" }), retryAfterMs: 12_000 },
  quirks: [
    {
      name: "treats AADSTS50196 (client request loop) as transient, not a dead grant",
      answer: () => ({
        status: 400,
        body: {
          error: "invalid_grant",
          error_description:
            "AADSTS50196: The server terminated an operation because it encountered a client request loop.",
        },
      }),
      expected: { outcome: "transient" },
    },
    {
      name: "treats interaction_required (MFA, conditional access) as a dead grant",
      answer: () => ({
        status: 400,
        body: { error: "interaction_required", error_description: "AADSTS50076: MFA required." },
      }),
      expected: { outcome: "invalid_grant" },
    },
  ],
};

describeProviderContract(microsoft, imitation);
