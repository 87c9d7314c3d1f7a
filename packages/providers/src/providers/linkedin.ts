import { defineProvider } from "../define-provider";

/**
 * LinkedIn (https://learn.microsoft.com/linkedin/shared/authentication/programmatic-refresh-tokens).
 * Refresh tokens are given only to approved Marketing Developer Platform partners.
 */
export const linkedin = defineProvider({
  id: "linkedin",
  displayName: "LinkedIn",
  tokenUrl: "https://www.linkedin.com/oauth/v2/accessToken",
  clientAuth: "body",
  // Access tokens live 60 days.
  fallbackLifetimeSeconds: 5_184_000,
  // The refresh token keeps its first TTL (365 days; refreshing does not extend it), stated
  // again as refresh_token_expires_in in each answer.
  rotatesRefreshToken: false,
  // OpenID userinfo: needs the `openid` scope; other tokens get 403 there, no verdict.
  validation: { kind: "identity", url: "https://api.linkedin.com/v2/userinfo" },
  authorization: { url: "https://www.linkedin.com/oauth/v2/authorization" },
  // RFC 7009 shape, the client's id and secret in the form as at the token endpoint.
  revocation: {
    kind: "rfc7009",
    url: "https://www.linkedin.com/oauth/v2/revoke",
    clientAuth: "token_endpoint",
  },
});
