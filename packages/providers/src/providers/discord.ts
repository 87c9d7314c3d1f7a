import { defineProvider, STANDARD_RATE_LIMIT_SOURCES } from "../define-provider";

/** Discord OAuth2 (API v10). */
export const discord = defineProvider({
  id: "discord",
  displayName: "Discord",
  tokenUrl: "https://discord.com/api/v10/oauth2/token",
  // Discord's token endpoint accepts form bodies only.
  bodyFormat: "form",
  // Discord access tokens live 7 days.
  fallbackLifetimeSeconds: 604_800,
  // Every answer carries a new refresh token. Rate limits come as 429 with a JSON
  // `retry_after` (float seconds); many 401/403/429 in a row earn a temporary IP ban, which
  // is why callers must honour retryAfterMs.
  rotatesRefreshToken: true,
  // Retry-After and the body's retry_after first; then the bucket's headers: seconds from
  // now (float) in Reset-After, an epoch in Reset.
  rateLimitSources: [
    ...STANDARD_RATE_LIMIT_SOURCES,
    { header: "x-ratelimit-reset-after", unit: "seconds" },
    { header: "x-ratelimit-reset", unit: "epoch_seconds" },
  ],
  // No introspection: the user's own record is the cheapest authenticated call.
  validation: { kind: "identity", url: "https://discord.com/api/v10/users/@me" },
  authorization: {
    url: "https://discord.com/oauth2/authorize",
    // Discord documents no PKCE for confidential clients: a challenge it may not check
    // would look like protection that is not there.
    pkce: false,
  },
  // RFC 7009, the client authenticating as at the token endpoint (basic).
  revocation: {
    kind: "rfc7009",
    url: "https://discord.com/api/oauth2/token/revoke",
    clientAuth: "token_endpoint",
  },
});
