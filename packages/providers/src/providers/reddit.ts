import { defineProvider, STANDARD_RATE_LIMIT_SOURCES } from "../define-provider";

/** Reddit (permanent grants: `duration=permanent`). */
export const reddit = defineProvider({
  id: "reddit",
  displayName: "Reddit",
  tokenUrl: "https://www.reddit.com/api/v1/access_token",
  clientAuth: "basic",
  // Reddit throttles generic user agents hard and asks each app for a unique one; the client
  // id makes it unique per app without configuration.
  headers: { "user-agent": "server:evergreen-{client_id}:1.0 (OAuth token refresh)" },
  fallbackLifetimeSeconds: 3600,
  // A bad client is 401 {"message": "Unauthorized", "error": 401}.
  errorCodes: { "401": "invalid_client" },
  // Seconds until the window resets, not an epoch.
  rateLimitSources: [
    ...STANDARD_RATE_LIMIT_SOURCES,
    { header: "x-ratelimit-reset", unit: "seconds" },
  ],
  // Permanent until revoked.
  rotatesRefreshToken: false,
  authorization: {
    url: "https://www.reddit.com/api/v1/authorize",
    params: { duration: "permanent" },
    pkce: false,
  },
  // The signed-in account: 401 for a dead token.
  validation: { kind: "identity", url: "https://oauth.reddit.com/api/v1/me" },
  // RFC 7009, client authenticated with Basic as at the token endpoint.
  revocation: {
    kind: "rfc7009",
    url: "https://www.reddit.com/api/v1/revoke_token",
    clientAuth: "token_endpoint",
  },
});
