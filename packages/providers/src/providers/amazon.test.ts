import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";
import { ProviderConfigError } from "../errors";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { amazon } from "./amazon";

const now = new Date("2026-03-01T12:00:00.000Z");
const settings = {
  provider: "amazon",
  clientId: "amzn1.application-oa2-client.x",
  clientSecret: "amzn-secret",
} as const;

describe("amazon", () => {
  it("posts body credentials to the North America endpoint by default", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "Atzr|rt" });
    expect(request.url).toBe("https://api.amazon.com/auth/o2/token");
    expect(request.headers).toEqual({
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(request.body).toBe(
      "grant_type=refresh_token&refresh_token=Atzr%7Crt&client_id=amzn1.application-oa2-client.x&client_secret=amzn-secret",
    );
  });

  it("maps the region from metadata to the EU and FE hosts", () => {
    const eu = buildRefreshRequest(settings, { refreshToken: "rt", metadata: { region: "eu" } });
    expect(eu.url).toBe("https://api.amazon.co.uk/auth/o2/token");
    const fe = buildRefreshRequest(settings, { refreshToken: "rt", metadata: { region: "fe" } });
    expect(fe.url).toBe("https://api.amazon.co.jp/auth/o2/token");
  });

  it("refuses any other region, including host fragments", () => {
    for (const region of ["de", "com", "evil.com", "toString", "co.uk"]) {
      expect(() =>
        buildRefreshRequest(settings, { refreshToken: "rt", metadata: { region } }),
      ).toThrow(ProviderConfigError);
    }
  });

  it("keeps the old refresh token when the answer has none", () => {
    const result = classifyAnswer(
      "amazon",
      {
        status: 200,
        headers: { "content-type": "application/json" },
        body: '{"access_token":"Atza|new","token_type":"bearer","expires_in":3600}',
      },
      now,
    );
    expect(result).toMatchObject({
      outcome: "success",
      accessToken: "Atza|new",
      refreshToken: null,
      tokenType: "bearer",
      expiresAt: new Date("2026-03-01T13:00:00.000Z"),
    });
  });

  it("maps an invalid_client answer", () => {
    const result = classifyAnswer(
      "amazon",
      {
        status: 401,
        headers: {},
        body: '{"error_description":"Client authentication failed","error":"invalid_client"}',
      },
      now,
    );
    expect(result).toEqual({
      outcome: "invalid_client",
      errorCode: "invalid_client",
      message: "Client authentication failed",
    });
  });
});

/** Login with Amazon: a long-lived refresh token, often absent from answers. */
const imitation: ProviderImitation = {
  grant: { omitRefreshToken: true },
  answers: {
    invalidGrant: {
      status: 400,
      body: {
        error: "invalid_grant",
        error_description: "The request has an invalid grant parameter : refresh_token",
      },
    },
    invalidClient: {
      status: 401,
      body: { error: "invalid_client", error_description: "Client authentication failed" },
    },
  },
  rateLimit: { answer: () => ({ status: 429, retryAfter: "5" }), retryAfterMs: 5_000 },
  quirks: [
    {
      name: "keeps the stored refresh token when the answer carries none",
      answer: () => ({
        status: 200,
        body: { access_token: "Atza|new", token_type: "bearer", expires_in: 3600 },
      }),
      expected: { outcome: "success", accessToken: "Atza|new", refreshToken: null },
    },
  ],
};

describeProviderContract(amazon, imitation);
