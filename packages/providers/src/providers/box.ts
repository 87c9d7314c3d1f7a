import { defineProvider } from "../define-provider";

/** Box (https://developer.box.com/guides/authentication/tokens/refresh). */
export const box = defineProvider({
  id: "box",
  displayName: "Box",
  tokenUrl: "https://api.box.com/oauth2/token",
  clientAuth: "body",
  // Access tokens live about an hour.
  fallbackLifetimeSeconds: 3600,
  // "Every time an application uses the Refresh Token ... the Refresh Token is invalidated":
  // single use, 60 days, and no documented window to reuse one whose answer was lost.
  rotatesRefreshToken: true,
  reuseGrace: null,
  validation: { kind: "identity", url: "https://api.box.com/2.0/users/me" },
  authorization: { url: "https://account.box.com/api/oauth2/authorize" },
  // RFC 7009 shape with client_id and client_secret in the form, as at the token endpoint.
  revocation: {
    kind: "rfc7009",
    url: "https://api.box.com/oauth2/revoke",
    clientAuth: "token_endpoint",
  },
});
