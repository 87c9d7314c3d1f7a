import { defineProvider, STANDARD_RATE_LIMIT_SOURCES } from "../define-provider";

/** X (formerly Twitter) OAuth 2.0 with PKCE, confidential clients. */
export const x = defineProvider({
  id: "x",
  displayName: "X",
  tokenUrl: "https://api.x.com/2/oauth2/token",
  // Basic is required for confidential clients.
  clientAuth: "basic",
  // Access tokens live 2 hours.
  fallbackLifetimeSeconds: 7200,
  descriptionRules: [
    // A used or revoked refresh token is `400 invalid_request` "Value passed for the token
    // was invalid.": the grant is gone, whatever the RFC code says.
    { error: "invalid_request", pattern: /token was invalid/i, outcome: "invalid_grant" },
  ],
  // Epoch seconds at which the window resets.
  rateLimitSources: [
    ...STANDARD_RATE_LIMIT_SOURCES,
    { header: "x-rate-limit-reset", unit: "epoch_seconds" },
  ],
  // Single use, no grace: a lost answer means the user must authorize again.
  rotatesRefreshToken: true,
  authorization: {
    url: "https://x.com/i/oauth2/authorize",
    // Without offline.access there is no refresh token. PKCE is mandatory at X.
    ensureScopes: ["offline.access"],
  },
  // The signed-in user: 401 for a dead token.
  validation: { kind: "identity", url: "https://api.x.com/2/users/me" },
  // RFC 7009, the client authenticating with Basic as at the token endpoint.
  revocation: {
    kind: "rfc7009",
    url: "https://api.x.com/2/oauth2/revoke",
    clientAuth: "token_endpoint",
  },
});
