import { defineProvider, STANDARD_RATE_LIMIT_SOURCES } from "../define-provider";

/** HubSpot public apps. */
export const hubspot = defineProvider({
  id: "hubspot",
  displayName: "HubSpot",
  tokenUrl: "https://api.hubapi.com/oauth/v1/token",
  clientAuth: "body",
  // Access tokens live 30 minutes.
  fallbackLifetimeSeconds: 1800,
  // HubSpot's own error body: {"status": "BAD_REFRESH_TOKEN", "message": "..."}; its newer
  // endpoints say {"category": "...", "message": "..."}.
  errorShape: {
    codeFields: ["error", "status", "category"],
    descriptionFields: ["error_description", "message"],
  },
  errorCodes: {
    BAD_REFRESH_TOKEN: "invalid_grant",
    BAD_CLIENT_ID: "invalid_client",
    BAD_CLIENT_SECRET: "invalid_client",
    RATE_LIMIT: "rate_limited",
  },
  // The window length of the limit that was hit: waiting one whole window is always enough.
  rateLimitSources: [
    ...STANDARD_RATE_LIMIT_SOURCES,
    { header: "x-hubspot-ratelimit-interval-milliseconds", unit: "milliseconds" },
  ],
  rotatesRefreshToken: false,
  authorization: { url: "https://app.hubspot.com/oauth/authorize" },
  // The account's own details: 401 for a dead token. (HubSpot's token-info call puts the
  // token in the URL path, where it would reach logs.)
  validation: { kind: "identity", url: "https://api.hubapi.com/account-info/v3/details" },
  // HubSpot revokes with DELETE /oauth/v1/refresh-tokens/{token}: the refresh token in the
  // URL path, where proxies and logs keep it. Not offered; uninstalling the app revokes all.
  revocation: null,
});
