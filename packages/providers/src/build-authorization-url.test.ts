import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl, pkceChallenge } from "./build-authorization-url";
import { ProviderConfigError } from "./errors";
import { PROVIDERS } from "./registry";
import { type IntegrationSettings, PROVIDER_IDS, type ProviderId } from "./types";

const request = {
  redirectUri: "https://evergreen.example.com/oauth/callback",
  state: "state-123",
  codeVerifier: "v".repeat(43),
};

function settings(provider: ProviderId, extra: Partial<IntegrationSettings> = {}) {
  return { provider, clientId: "client-1", clientSecret: "secret", ...extra };
}

function query(url: string): Record<string, string> {
  return Object.fromEntries(new URL(url).searchParams);
}

function problemOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof ProviderConfigError) return error.problem;
    throw error;
  }
  throw new Error("expected a ProviderConfigError");
}

describe("buildAuthorizationUrl", () => {
  it("has an https authorization URL for every catalog provider", () => {
    for (const id of PROVIDER_IDS.filter((p) => p !== "oauth2")) {
      // Shopify and Okta have no default host: the shop or org is the connection's.
      const url = buildAuthorizationUrl(settings(id), {
        ...request,
        metadata: { shop: "acme.myshopify.com", org: "acme.okta.com" },
      });
      expect(url.startsWith("https://")).toBe(true);
      expect(PROVIDERS[id].authorization.url).not.toBeNull();
    }
  });

  it("asks Google for offline access and a fresh consent, with a PKCE S256 challenge", () => {
    const url = buildAuthorizationUrl(
      settings("google", { scopes: ["openid", "https://www.googleapis.com/auth/drive.file"] }),
      request,
    );
    expect(url.split("?")[0]).toBe("https://accounts.google.com/o/oauth2/v2/auth");
    expect(query(url)).toEqual({
      access_type: "offline",
      prompt: "consent",
      response_type: "code",
      client_id: "client-1",
      redirect_uri: request.redirectUri,
      state: "state-123",
      scope: "openid https://www.googleapis.com/auth/drive.file",
      code_challenge: pkceChallenge(request.codeVerifier),
      code_challenge_method: "S256",
    });
  });

  it("adds offline_access for Microsoft and fills the tenant from metadata", () => {
    const url = buildAuthorizationUrl(settings("microsoft", { scopes: ["User.Read"] }), {
      ...request,
      metadata: { tenant: "contoso.onmicrosoft.com" },
    });
    expect(url.split("?")[0]).toBe(
      "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
    );
    expect(query(url).scope).toBe("User.Read offline_access");
    const bad = { ...request, metadata: { tenant: "../evil" } };
    expect(problemOf(() => buildAuthorizationUrl(settings("microsoft"), bad))).toBe(
      "invalid_placeholder",
    );
  });

  it("sends Amazon users to the sign-in host of their region", () => {
    const eu = buildAuthorizationUrl(settings("amazon"), {
      ...request,
      metadata: { region: "eu" },
    });
    expect(eu.split("?")[0]).toBe("https://eu.account.amazon.com/ap/oa");
    expect(buildAuthorizationUrl(settings("amazon"), request).split("?")[0]).toBe(
      "https://www.amazon.com/ap/oa",
    );
  });

  it("sends no challenge to a provider that does not accept PKCE", () => {
    const url = query(buildAuthorizationUrl(settings("discord"), request));
    expect(url.code_challenge).toBeUndefined();
    expect(url.code_challenge_method).toBeUndefined();
  });

  it("lets the request's scopes replace the integration's, and sends none when there are none", () => {
    const integration = settings("spotify", { scopes: ["user-read-email"] });
    expect(
      query(buildAuthorizationUrl(integration, { ...request, scopes: ["streaming"] })).scope,
    ).toBe("streaming");
    expect(query(buildAuthorizationUrl(settings("spotify"), request)).scope).toBeUndefined();
  });

  it("needs the integration's URL for oauth2, holds it to https, and keeps its query", () => {
    expect(problemOf(() => buildAuthorizationUrl(settings("oauth2"), request))).toBe(
      "missing_authorization_url",
    );
    const generic = settings("oauth2", {
      authorizationUrl: "https://id.example.com/auth?tenant=a",
    });
    expect(query(buildAuthorizationUrl(generic, request))).toMatchObject({ tenant: "a" });
    const insecure = settings("oauth2", { authorizationUrl: "http://id.example.com/auth" });
    expect(problemOf(() => buildAuthorizationUrl(insecure, request))).toBe(
      "insecure_authorization_url",
    );
    expect(
      buildAuthorizationUrl(insecure, request, { allowInsecureTokenUrls: true }).startsWith(
        "http:",
      ),
    ).toBe(true);
    const hostPlaceholder = settings("oauth2", { authorizationUrl: "https://{tenant}.example/a" });
    expect(problemOf(() => buildAuthorizationUrl(hostPlaceholder, request))).toBe(
      "placeholder_outside_path",
    );
  });

  it("adds the integration's parameters but never lets them replace the request's own", () => {
    const url = query(
      buildAuthorizationUrl(
        settings("google", {
          authorizationParams: {
            prompt: "select_account",
            login_hint: "a@example.com",
            redirect_uri: "https://evil.example/steal",
            state: "fixed",
          },
        }),
        request,
      ),
    );
    expect(url).toMatchObject({
      prompt: "select_account",
      login_hint: "a@example.com",
      redirect_uri: request.redirectUri,
      state: "state-123",
    });
  });
});

describe("pkceChallenge", () => {
  it("matches RFC 7636 Appendix B", () => {
    expect(pkceChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).toBe(
      "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    );
  });
});
