import { defineProvider } from "../define-provider";

/** Zoho's accounts servers by data centre, as the callback's `location` names them. */
const ACCOUNTS_SERVERS = {
  us: "accounts.zoho.com",
  eu: "accounts.zoho.eu",
  in: "accounts.zoho.in",
  au: "accounts.zoho.com.au",
  jp: "accounts.zoho.jp",
  ca: "accounts.zohocloud.ca",
  sa: "accounts.zoho.sa",
  uk: "accounts.zoho.uk",
  cn: "accounts.zoho.com.cn",
} as const;

/**
 * Zoho (CRM, Books, Desk...). A user's data lives in one data centre, which the callback
 * names (`location=eu`); it is kept in metadata and picks the token host from a fixed map.
 */
export const zoho = defineProvider({
  id: "zoho",
  displayName: "Zoho",
  tokenUrl: "https://{location}/oauth/v2/token",
  placeholders: { location: { values: ACCOUNTS_SERVERS, default: "us" } },
  clientAuth: "body",
  fallbackLifetimeSeconds: 3600,
  // Errors come as HTTP 200 {"error": "invalid_code"} (the refresh token is not valid).
  errorsInOkBody: true,
  errorCodes: {
    invalid_code: "invalid_grant",
    invalid_client_secret: "invalid_client",
    // Ten access tokens per refresh token per ten minutes, else 200 {"error": "Access
    // Denied"}: the limit is the connection's, not the integration's, so it backs off
    // alone (transient) instead of cooling every connection of the integration down.
    "Access Denied": "transient",
  },
  rotatesRefreshToken: false,
  // API calls go to the data centre's API domain (`https://www.zohoapis.eu`).
  appValues: { answer: ["api_domain"], callback: ["location"] },
  authorization: {
    // Users sign in on the global server, which sends them to their data centre.
    url: "https://accounts.zoho.com/oauth/v2/auth",
    params: { access_type: "offline", prompt: "consent" },
    // Zoho's scopes are comma-separated.
    scopeSeparator: ",",
    pkce: false,
  },
  // Zoho has no token-info call common to its products; a dead token shows at the refresh.
  validation: null,
  // Revocation lives on the data centre's accounts server, which a revocation (made after
  // the connection and its metadata are deleted) no longer knows: the integration names it
  // (revocationUrl, e.g. https://accounts.zoho.eu/oauth/v2/token/revoke).
  revocation: { kind: "rfc7009", url: null, clientAuth: "none" },
});
