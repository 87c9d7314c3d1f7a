import { defineProvider } from "../define-provider";

/** Google OAuth 2.0 (https://developers.google.com/identity/protocols/oauth2/web-server). */
export const google = defineProvider({
  id: "google",
  displayName: "Google",
  tokenUrl: "https://oauth2.googleapis.com/token",
  clientAuth: "body",
  // Google names client problems outside RFC 6749: `deleted_client` and `disabled_client`
  // answer every grant of the client, so they are the app's problem, not the user's.
  errorCodes: { deleted_client: "invalid_client", disabled_client: "invalid_client" },
  // Google answers without refresh_token: the stored one stays valid (until 6 months unused,
  // revocation, a password change with Gmail scopes, or 7 days for apps in "Testing").
  rotatesRefreshToken: false,
  clientIdFormat: {
    pattern: /^\S+\.apps\.googleusercontent\.com$/,
    rule: "end in .apps.googleusercontent.com",
  },
  // Token information: the scopes granted and the seconds left, for one cheap POST.
  validation: { kind: "tokeninfo", url: "https://oauth2.googleapis.com/tokeninfo" },
  authorization: {
    url: "https://accounts.google.com/o/oauth2/v2/auth",
    // Without access_type=offline Google issues no refresh token at all, and it issues one
    // only at the first consent unless prompt=consent asks again: an app reconnecting a
    // user would otherwise get an access token that Evergreen can never refresh.
    params: { access_type: "offline", prompt: "consent" },
  },
  // RFC 7009 without client authentication: the token alone names the grant, and revoking
  // either token revokes the whole grant (refresh token included).
  revocation: { kind: "rfc7009", url: "https://oauth2.googleapis.com/revoke", clientAuth: "none" },
});
