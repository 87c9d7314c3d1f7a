import { defineProvider } from "../define-provider";

/** Atlassian Cloud (Jira, Confluence) OAuth 2.0 (3LO). */
export const atlassian = defineProvider({
  id: "atlassian",
  displayName: "Atlassian",
  tokenUrl: "https://auth.atlassian.com/oauth/token",
  clientAuth: "body",
  bodyFormat: "json",
  fallbackLifetimeSeconds: 3600,
  // Rotating refresh tokens: each refresh returns a new one (90 days inactive, 365 absolute).
  // A dead grant is `403 {"error": "invalid_grant"}`, which the RFC codes already read.
  rotatesRefreshToken: true,
  // Atlassian's rotating refresh tokens have a reuse interval of about 10 minutes (its
  // refresh-token guide), in which the one just rotated away still works.
  reuseGrace: 600,
  // Wrong client credentials come back as 401 access_denied "Unauthorized" (community
  // reports; the docs list no token-endpoint errors): the client, not the grant.
  errorCodes: { access_denied: "invalid_client" },
  authorization: {
    url: "https://auth.atlassian.com/authorize",
    // `audience` names the API; `prompt=consent` is what Atlassian's docs send.
    params: { audience: "api.atlassian.com", prompt: "consent" },
    // Without offline_access there is no refresh token.
    ensureScopes: ["offline_access"],
    // 3LO documents no PKCE for confidential apps.
    pkce: false,
  },
  // The signed-in user's profile: 401 for a dead token.
  validation: { kind: "identity", url: "https://api.atlassian.com/me" },
  // Atlassian offers no revocation endpoint for 3LO: users remove an app's access in their
  // account settings, and refresh tokens die after 90 days unused.
  revocation: null,
});
