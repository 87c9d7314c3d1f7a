import { defineProvider, type ProviderSpec } from "../define-provider";

/**
 * Slack apps with token rotation (granular bot tokens). One connection holds one grant:
 * this definition refreshes the bot token, the answer's top level. Slack refreshes a user
 * token (`authed_user` of the install answer) separately, with its own refresh token, so
 * it is a connection of its own, under an integration whose provider is `slack_user`
 * (slack-user.ts; docs/adr/0020-slack-bot-and-user-tokens.md).
 */
/**
 * What Slack's token rotation is, whichever token a connection holds: the endpoint, its
 * 200 {"ok": false} errors, 12-hour tokens, each refresh token revoked on use.
 */
export const SLACK_ROTATION = {
  tokenUrl: "https://slack.com/api/oauth.v2.access",
  // Slack asks for HTTP Basic "if possible" and accepts body credentials.
  clientAuth: "basic",
  // Rotating tokens live 12 hours.
  fallbackLifetimeSeconds: 43_200,
  // The Web API answers HTTP 200 {"ok": false, "error": "..."}; `error` is the code.
  errorsInOkBody: true,
  errorCodes: {
    invalid_refresh_token: "invalid_grant",
    token_revoked: "invalid_grant",
    token_expired: "invalid_grant",
    invalid_client_id: "invalid_client",
    bad_client_secret: "invalid_client",
    ratelimited: "rate_limited",
    internal_error: "transient",
    fatal_error: "transient",
    service_unavailable: "transient",
    request_timeout: "transient",
  },
  // "The refresh token is then revoked": each answer carries the next one.
  rotatesRefreshToken: true,
  // auth.test answers 200 {"ok": false, "error": "invalid_auth"} for a dead token.
  validation: { kind: "identity", url: "https://slack.com/api/auth.test", okField: "ok" },
  // auth.revoke takes the access token as its own credential (no client, no refresh token,
  // no token_type_hint): not RFC 7009, and with rotation an access token of 12 hours may be
  // gone by the time a deleted connection is revoked. Uninstalling the app revokes all.
  revocation: null,
} as const satisfies Partial<ProviderSpec>;

export const slack = defineProvider({
  id: "slack",
  displayName: "Slack",
  ...SLACK_ROTATION,
  authorization: {
    url: "https://slack.com/oauth/v2/authorize",
    // Comma-separated bot scopes.
    scopeSeparator: ",",
  },
});
