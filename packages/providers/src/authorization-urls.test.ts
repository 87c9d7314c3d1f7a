import { describe, expect, it } from "vitest";
import { buildAuthorizationUrl, pkceChallenge } from "./build-authorization-url";
import { PROVIDERS } from "./registry";
import { type AuthorizationRequest, PROVIDER_IDS, type ProviderId } from "./types";

/**
 * The connect flow's authorization URL for every catalog provider, as its documentation
 * describes it: the endpoint, the parameters it needs beyond RFC 6749 §4.1.1, and whether
 * PKCE goes along. A provider added to the registry fails here until it has a row.
 */
interface Expected {
  readonly endpoint: string;
  /** Parameters beyond response_type, client_id, redirect_uri, state and PKCE. */
  readonly params?: Record<string, string>;
  /** The scope parameter sent when the app asks for `read` and `write`. */
  readonly scope: string;
  /** Where the scopes go. @defaultValue "scope" */
  readonly scopeParam?: string;
  readonly pkce: boolean;
  readonly metadata?: Record<string, unknown>;
}

const EXPECTED: Record<Exclude<ProviderId, "oauth2">, Expected> = {
  google: {
    endpoint: "https://accounts.google.com/o/oauth2/v2/auth",
    params: { access_type: "offline", prompt: "consent" },
    scope: "read write",
    pkce: true,
  },
  microsoft: {
    endpoint: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    scope: "read write offline_access",
    pkce: true,
  },
  amazon: { endpoint: "https://www.amazon.com/ap/oa", scope: "read write", pkce: true },
  spotify: { endpoint: "https://accounts.spotify.com/authorize", scope: "read write", pkce: true },
  discord: { endpoint: "https://discord.com/oauth2/authorize", scope: "read write", pkce: false },
  github: { endpoint: "https://github.com/login/oauth/authorize", scope: "read write", pkce: true },
  xero: {
    endpoint: "https://login.xero.com/identity/connect/authorize",
    scope: "read write offline_access",
    pkce: true,
  },
  zoom: { endpoint: "https://zoom.us/oauth/authorize", scope: "read write", pkce: true },
  dropbox: {
    endpoint: "https://www.dropbox.com/oauth2/authorize",
    params: { token_access_type: "offline" },
    scope: "read write",
    pkce: true,
  },
  linkedin: {
    endpoint: "https://www.linkedin.com/oauth/v2/authorization",
    scope: "read write",
    pkce: true,
  },
  notion: {
    endpoint: "https://api.notion.com/v1/oauth/authorize",
    params: { owner: "user" },
    scope: "read write",
    pkce: true,
  },
  box: {
    endpoint: "https://account.box.com/api/oauth2/authorize",
    scope: "read write",
    pkce: true,
  },
  pinterest: { endpoint: "https://www.pinterest.com/oauth/", scope: "read,write", pkce: true },
  slack: { endpoint: "https://slack.com/oauth/v2/authorize", scope: "read,write", pkce: true },
  // The same consent page; a user token's scopes go in user_scope.
  slack_user: {
    endpoint: "https://slack.com/oauth/v2/authorize",
    scope: "read,write",
    scopeParam: "user_scope",
    pkce: true,
  },
  salesforce: {
    endpoint: "https://acme.my.salesforce.com/services/oauth2/authorize",
    scope: "read write",
    pkce: true,
    metadata: { login_host: "acme.my.salesforce.com" },
  },
  hubspot: { endpoint: "https://app.hubspot.com/oauth/authorize", scope: "read write", pkce: true },
  intuit: {
    endpoint: "https://appcenter.intuit.com/connect/oauth2",
    scope: "read write",
    pkce: false,
  },
  atlassian: {
    endpoint: "https://auth.atlassian.com/authorize",
    params: { audience: "api.atlassian.com", prompt: "consent" },
    scope: "read write offline_access",
    pkce: false,
  },
  shopify: {
    endpoint: "https://acme.myshopify.com/admin/oauth/authorize",
    scope: "read,write",
    pkce: false,
    metadata: { shop: "acme.myshopify.com" },
  },
  strava: {
    endpoint: "https://www.strava.com/oauth/authorize",
    params: { approval_prompt: "auto" },
    scope: "read,write",
    pkce: false,
  },
  twitch: { endpoint: "https://id.twitch.tv/oauth2/authorize", scope: "read write", pkce: false },
  reddit: {
    endpoint: "https://www.reddit.com/api/v1/authorize",
    params: { duration: "permanent" },
    scope: "read write",
    pkce: false,
  },
  zoho: {
    endpoint: "https://accounts.zoho.com/oauth/v2/auth",
    params: { access_type: "offline", prompt: "consent" },
    scope: "read,write",
    pkce: false,
  },
  okta: {
    endpoint: "https://acme.okta.com/oauth2/default/v1/authorize",
    scope: "read write offline_access",
    pkce: true,
    metadata: { org: "acme.okta.com" },
  },
  x: {
    endpoint: "https://x.com/i/oauth2/authorize",
    scope: "read write offline.access",
    pkce: true,
  },
};

const request: AuthorizationRequest = {
  redirectUri: "https://evergreen.example.com/oauth/callback",
  state: "state-abc",
  scopes: ["read", "write"],
  codeVerifier: "v".repeat(43),
};

describe("authorization URLs of the catalog", () => {
  it("has a row for every catalog provider", () => {
    expect(Object.keys(EXPECTED).sort()).toEqual(
      PROVIDER_IDS.filter((id) => id !== "oauth2").sort(),
    );
  });

  for (const [id, expected] of Object.entries(EXPECTED) as [ProviderId, Expected][]) {
    it(`${id}: ${expected.endpoint}`, () => {
      const url = new URL(
        buildAuthorizationUrl(
          { provider: id, clientId: "client-1" },
          { ...request, ...(expected.metadata ? { metadata: expected.metadata } : {}) },
        ),
      );
      expect(`${url.origin}${url.pathname}`).toBe(expected.endpoint);
      expect(Object.fromEntries(url.searchParams)).toEqual({
        ...expected.params,
        response_type: "code",
        client_id: "client-1",
        redirect_uri: request.redirectUri,
        state: "state-abc",
        [expected.scopeParam ?? "scope"]: expected.scope,
        ...(expected.pkce
          ? {
              code_challenge: pkceChallenge(request.codeVerifier ?? ""),
              code_challenge_method: "S256",
            }
          : {}),
      });
      expect(PROVIDERS[id].authorization.pkce).toBe(expected.pkce);
    });
  }
});
