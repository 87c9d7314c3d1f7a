import { defineProvider } from "../define-provider";

/** Dropbox (https://developers.dropbox.com/oauth-guide). */
export const dropbox = defineProvider({
  id: "dropbox",
  displayName: "Dropbox",
  tokenUrl: "https://api.dropboxapi.com/oauth2/token",
  // Basic or body both work; Basic keeps the secret out of the body.
  clientAuth: "basic",
  // Short-lived access tokens: four hours.
  fallbackLifetimeSeconds: 14_400,
  // The refresh token is long-lived and absent from refresh answers: keep the stored one.
  rotatesRefreshToken: false,
  // users/get_current_account is an RPC endpoint: a POST without body.
  validation: {
    kind: "identity",
    url: "https://api.dropboxapi.com/2/users/get_current_account",
    method: "POST",
  },
  authorization: {
    url: "https://www.dropbox.com/oauth2/authorize",
    // Without token_access_type=offline Dropbox issues no refresh token.
    params: { token_access_type: "offline" },
  },
  // Not RFC 7009: /2/auth/token/revoke takes the access token as Bearer, no body, and
  // revokes it with its refresh token.
  revocation: { kind: "bearer", url: "https://api.dropboxapi.com/2/auth/token/revoke" },
});
