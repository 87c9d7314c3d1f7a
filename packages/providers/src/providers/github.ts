import { defineProvider } from "../define-provider";

/** GitHub OAuth Apps and GitHub Apps (user access tokens). */
export const github = defineProvider({
  id: "github",
  displayName: "GitHub",
  tokenUrl: "https://github.com/login/oauth/access_token",
  clientAuth: "body",
  // Without it GitHub answers form-encoded text (classifyAnswer reads that too).
  headers: { accept: "application/json" },
  // OAuth App tokens do not expire; GitHub App user tokens always state expires_in (8 h).
  fallbackLifetimeSeconds: null,
  // GitHub answers HTTP 200 with {"error": "bad_refresh_token", ...}.
  errorsInOkBody: true,
  errorCodes: {
    bad_refresh_token: "invalid_grant",
    incorrect_client_credentials: "invalid_client",
  },
  // GitHub App refresh tokens are single use (6 months, `refresh_token_expires_in`), with no
  // grace period: a lost answer means the user must authorize again.
  rotatesRefreshToken: true,
  // PKCE S256 is accepted by OAuth Apps and GitHub Apps alike (GitHub changelog, 2025-07).
  // The check-token call: 404 when the token is not valid for this app, whatever the cause.
  validation: { kind: "check_token", url: "https://api.github.com/applications/{client_id}/token" },
  authorization: { url: "https://github.com/login/oauth/authorize" },
  // Not RFC 7009: DELETE of the app's grant for the user's access token, which revokes
  // every token of that grant (REST "Delete an app authorization").
  revocation: {
    kind: "github_grant",
    url: "https://api.github.com/applications/{client_id}/grant",
  },
});
