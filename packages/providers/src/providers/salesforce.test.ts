import { describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";
import { ProviderConfigError } from "../errors";
import { describeProviderContract, type ProviderImitation } from "../testing/provider-contract";
import { salesforce } from "./salesforce";

const settings = { provider: "salesforce", clientId: "3MVG9-id", clientSecret: "sf" } as const;
const urlFor = (login_host?: unknown) =>
  buildRefreshRequest(settings, { refreshToken: "5Aep-rt", metadata: { login_host } }).url;

describe("salesforce", () => {
  it("takes the integration's session timeout for an answer without expires_in", () => {
    const now = new Date("2026-03-01T12:00:00.000Z");
    const answer = {
      status: 200,
      headers: { "content-type": "application/json" },
      body: '{"access_token":"00D!at","instance_url":"https://acme.my.salesforce.com","issued_at":"1"}',
    };
    expect(classifyAnswer("salesforce", answer, now)).toMatchObject({
      expiresAt: new Date("2026-03-01T12:15:00.000Z"),
    });
    expect(
      classifyAnswer("salesforce", answer, now, { fallbackLifetimeSeconds: 7200 }),
    ).toMatchObject({ expiresAt: new Date("2026-03-01T14:00:00.000Z") });
  });

  it("refreshes at login.salesforce.com with body credentials by default", () => {
    const request = buildRefreshRequest(settings, { refreshToken: "5Aep-rt" });
    expect(request.url).toBe("https://login.salesforce.com/services/oauth2/token");
    expect(new URLSearchParams(request.body).get("client_secret")).toBe("sf");
  });

  it("reaches sandboxes and My Domain hosts named by metadata", () => {
    expect(urlFor("test.salesforce.com")).toBe("https://test.salesforce.com/services/oauth2/token");
    expect(urlFor("acme.my.salesforce.com")).toBe(
      "https://acme.my.salesforce.com/services/oauth2/token",
    );
    expect(urlFor("acme--dev.sandbox.my.salesforce.com")).toBe(
      "https://acme--dev.sandbox.my.salesforce.com/services/oauth2/token",
    );
  });

  it("refuses any login host outside Salesforce's domains", () => {
    for (const host of [
      "evil.com",
      "evil.com#",
      "acme.my.salesforce.com.evil.com",
      "acme.my.salesforce.com:8443",
      "user@acme.my.salesforce.com",
      "../login.salesforce.com",
      "acme.my.salesforce.com/..",
      "ａcme.my.salesforce.com",
      "login.salesforce.com\n",
      42,
    ]) {
      expect(() => urlFor(host)).toThrow(ProviderConfigError);
    }
  });
});

/** No expires_in, an instance URL to keep, "already being processed" under concurrency. */
const imitation: ProviderImitation = {
  grant: {},
  answers: {
    omitExpiresIn: true,
    successFields: () => ({
      instance_url: "https://acme.my.salesforce.com",
      id: "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
      issued_at: "1278448384422",
      signature: "CMJ4l+CCaPQiKjoOEwEig9H4wqhpuLSk4J2urAe+fVg=",
    }),
    invalidGrant: {
      status: 400,
      body: { error: "invalid_grant", error_description: "expired access/refresh token" },
    },
    invalidClient: {
      status: 400,
      body: { error: "invalid_client_id", error_description: "client identifier invalid" },
    },
  },
  success: (now) => ({
    // No expires_in: the conservative fallback (the shortest session timeout an org can set).
    expiresAt: new Date(now.getTime() + 900_000),
    appValues: {
      instance_url: "https://acme.my.salesforce.com",
      id: "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
    },
  }),
  rateLimit: { answer: () => ({ status: 429, body: "" }), retryAfterMs: null },
  quirks: [
    {
      name: "retries a refresh refused because another one is being processed",
      answer: () => ({
        status: 400,
        body: {
          error: "invalid_grant",
          error_description: "token request is already being processed",
        },
      }),
      expected: { outcome: "transient", errorCode: "invalid_grant" },
    },
    {
      name: "stops for an inactive user",
      answer: () => ({
        status: 400,
        body: { error: "inactive_user", error_description: "user is not active" },
      }),
      expected: { outcome: "invalid_grant" },
    },
  ],
};

describeProviderContract(salesforce, imitation);
