import { defineProvider } from "../define-provider";

/** Strava API v3. */
export const strava = defineProvider({
  id: "strava",
  displayName: "Strava",
  tokenUrl: "https://www.strava.com/api/v3/oauth/token",
  clientAuth: "body",
  // Access tokens live 6 hours; answers carry both expires_in and an epoch `expires_at`.
  fallbackLifetimeSeconds: 21_600,
  // Strava's own error body: {"message": "Bad Request", "errors": [{"resource":
  // "RefreshToken", "field": "refresh_token", "code": "invalid"}]}: the resource says what
  // was refused.
  errorShape: {
    codeFields: ["error", "errors.0.resource"],
    descriptionFields: ["error_description", "message"],
  },
  errorCodes: {
    RefreshToken: "invalid_grant",
    AuthorizationCode: "invalid_grant",
    Application: "invalid_client",
    Athlete: "invalid_grant",
  },
  // A refresh may return a new refresh token, and then the newest is the one to keep; the
  // answer always carries one, so it is always stored.
  rotatesRefreshToken: false,
  authorization: {
    url: "https://www.strava.com/oauth/authorize",
    params: { approval_prompt: "auto" },
    // Strava's scopes are comma-separated.
    scopeSeparator: ",",
    pkce: false,
  },
  // The authenticated athlete: 401 for a dead token.
  validation: { kind: "identity", url: "https://www.strava.com/api/v3/athlete" },
  // POST /oauth/deauthorize takes `access_token`, not RFC 7009's `token`, and revokes the
  // whole authorization; not offered until revocations can name their parameter.
  revocation: null,
});
