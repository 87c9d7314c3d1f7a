import { defineProvider, STANDARD_RATE_LIMIT_SOURCES } from "../define-provider";

/**
 * Okta custom authorization servers. The org (`acme.okta.com`) and the authorization server
 * (`default`, or an id like `aus1a2b3c4d5e6f7g8h9`) come from metadata `org` and
 * `authorization_server`; only Okta's own domains pass. An org on a custom domain, or the
 * org authorization server (`/oauth2/v1/token`), is an integration-level tokenUrl.
 */
export const okta = defineProvider({
  id: "okta",
  displayName: "Okta",
  tokenUrl: "https://{org}/oauth2/{authorization_server}/v1/token",
  placeholders: {
    org: {
      pattern:
        /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.(?:okta|oktapreview|okta-emea|okta-gov|trexcloud)\.com$/,
      default: "",
    },
    authorization_server: { pattern: /^[A-Za-z0-9]{1,64}$/, default: "default" },
  },
  // Client authentication is per app in Okta; Basic is its default for web apps.
  clientAuth: "basic",
  fallbackLifetimeSeconds: 3600,
  // Epoch seconds at which the window resets.
  rateLimitSources: [
    ...STANDARD_RATE_LIMIT_SOURCES,
    { header: "x-rate-limit-reset", unit: "epoch_seconds" },
  ],
  // Rotation is on for SPAs and native apps and optional for web apps, with a 0-60 s grace
  // (default 30 s); reusing a rotated token after it revokes the whole grant. Treated as
  // rotating: the new tokens are stored before anything else.
  rotatesRefreshToken: true,
  // The leeway is set per app (0-60 s), unknown here; Okta's default is 30 s. Assuming it
  // costs nothing where an org set less: the resend inside 27 s is refused, and the grant
  // had been lost with the answer anyway (docs/adr/0016).
  reuseGrace: 30,
  authorization: {
    url: "https://{org}/oauth2/{authorization_server}/v1/authorize",
    ensureScopes: ["offline_access"],
  },
  // OpenID Connect userinfo (with the openid scope): 401 for a dead token.
  validation: {
    kind: "identity",
    url: "https://{org}/oauth2/{authorization_server}/v1/userinfo",
  },
  // RFC 7009 at the authorization server's /v1/revoke; a revocation no longer knows the
  // deleted connection's org, so the integration names it (revocationUrl).
  revocation: { kind: "rfc7009", url: null, clientAuth: "token_endpoint" },
});
