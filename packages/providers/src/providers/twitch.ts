import { defineProvider } from "../define-provider";

/** Twitch (user access tokens from the authorization code flow). */
export const twitch = defineProvider({
  id: "twitch",
  displayName: "Twitch",
  tokenUrl: "https://id.twitch.tv/oauth2/token",
  clientAuth: "body",
  // Lifetimes vary (about 4 hours); the answer states expires_in.
  fallbackLifetimeSeconds: 3600,
  // Twitch's own error body: {"status": 400, "message": "Invalid refresh token"}, sometimes
  // with "error": "Bad Request". The message is the code.
  errorShape: { codeFields: ["message", "error"], descriptionFields: ["message"] },
  errorCodes: {
    "Invalid refresh token": "invalid_grant",
    "invalid refresh token": "invalid_grant",
    "invalid client": "invalid_client",
    "invalid client secret": "invalid_client",
  },
  // Confidential clients keep their refresh token (a new one may come, and is stored).
  rotatesRefreshToken: false,
  authorization: { url: "https://id.twitch.tv/oauth2/authorize", pkce: false },
  // Twitch requires apps to validate tokens hourly (set the integration's
  // validateIntervalSeconds to 3600); /validate takes `Authorization: OAuth <token>` and
  // answers 401 for a dead one.
  validation: { kind: "identity", url: "https://id.twitch.tv/oauth2/validate", scheme: "OAuth" },
  // POST /oauth2/revoke with client_id and token, RFC 7009 in shape.
  revocation: {
    kind: "rfc7009",
    url: "https://id.twitch.tv/oauth2/revoke",
    clientAuth: "token_endpoint",
  },
});
