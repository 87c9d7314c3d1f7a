import { defineProvider } from "../define-provider";

/** Zoom OAuth apps (https://developers.zoom.us/docs/integrations/oauth/). */
export const zoom = defineProvider({
  id: "zoom",
  displayName: "Zoom",
  tokenUrl: "https://zoom.us/oauth/token",
  // Zoom's guide: client_id:client_secret as Basic, the grant in a form body.
  clientAuth: "basic",
  // Access tokens live one hour.
  fallbackLifetimeSeconds: 3600,
  // Zoom's token errors say why in `reason`, not `error_description`, and a dead refresh
  // token comes back as `400 {"reason": "Invalid Token!", "error": "invalid_request"}`
  // (Zoom developer forum; its error table lists 4711 "Refresh token invalid."): read as
  // invalid_request alone it would be retried as unknown, then stopped as a config error.
  errorShape: { codeFields: ["error"], descriptionFields: ["error_description", "reason"] },
  descriptionRules: [
    {
      error: "invalid_request",
      pattern: /^(?:invalid token!?|refresh token invalid\.?)$/i,
      outcome: "invalid_grant",
    },
  ],
  // Each refresh returns a new refresh token and the one sent stops working; Zoom documents
  // no window in which the old one may be used again.
  rotatesRefreshToken: true,
  reuseGrace: null,
  // The token's own user: 401 once the token or the app's authorization is gone.
  validation: { kind: "identity", url: "https://api.zoom.us/v2/users/me" },
  authorization: { url: "https://zoom.us/oauth/authorize" },
  // RFC 7009 shape: POST `token` with the client's Basic credentials.
  revocation: {
    kind: "rfc7009",
    url: "https://zoom.us/oauth/revoke",
    clientAuth: "token_endpoint",
  },
});
