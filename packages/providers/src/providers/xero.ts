import { defineProvider } from "../define-provider";

/** Xero (https://developer.xero.com/documentation/guides/oauth2/auth-flow). */
export const xero = defineProvider({
  id: "xero",
  displayName: "Xero",
  tokenUrl: "https://identity.xero.com/connect/token",
  // The auth-flow guide sends client_id:client_secret as Basic.
  clientAuth: "basic",
  // Access tokens live 30 minutes.
  fallbackLifetimeSeconds: 1800,
  // Every refresh returns a new refresh token; unused ones die after 60 days.
  rotatesRefreshToken: true,
  // Xero's OAuth 2.0 FAQ: "If you don't receive a response from a token refresh you can retry
  // using your existing refresh token for up to 30 minutes."
  reuseGrace: 1800,
  // Xero shows client ids as 32 upper-case hexadecimal characters.
  clientIdFormat: { pattern: /^[0-9A-F]{32}$/i, rule: "are 32 hexadecimal characters" },
  // The tenants this token may reach: 401 once the token or the connection is gone.
  validation: { kind: "identity", url: "https://api.xero.com/connections" },
  authorization: {
    url: "https://login.xero.com/identity/connect/authorize",
    // Without offline_access Xero issues no refresh token.
    ensureScopes: ["offline_access"],
  },
  // RFC 7009 with Basic client authentication; revoking the refresh token removes every
  // tenant connection the grant made.
  revocation: {
    kind: "rfc7009",
    url: "https://identity.xero.com/connect/revocation",
    clientAuth: "token_endpoint",
  },
});
