import { defineProvider } from "../define-provider";

/**
 * Salesforce (connected apps). The login host comes from connection metadata `login_host`:
 * production (`login.salesforce.com`, the default), sandboxes (`test.salesforce.com`) or the
 * org's My Domain (`acme.my.salesforce.com`, `acme--dev.sandbox.my.salesforce.com`), and
 * nothing else: the refresh carries the client secret.
 */
export const salesforce = defineProvider({
  id: "salesforce",
  displayName: "Salesforce",
  tokenUrl: "https://{login_host}/services/oauth2/token",
  placeholders: {
    login_host: {
      pattern:
        /^(?:login\.salesforce\.com|test\.salesforce\.com|[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?(?:\.(?:sandbox|develop|scratch|demo|patch|trailblaze))?\.my\.salesforce\.com)$/,
      default: "login.salesforce.com",
    },
  },
  clientAuth: "body",
  // The answer has no expires_in (only issued_at): the org's session timeout decides, and
  // it may be as short as 15 minutes. Refreshing a token that would have lived 2 hours
  // costs a request; handing out an expired one is what Evergreen exists to avoid.
  fallbackLifetimeSeconds: 900,
  descriptionRules: [
    // Two refreshes of one user at once: the second is refused, the grant is fine.
    {
      error: "invalid_grant",
      pattern: /already being processed/i,
      outcome: "transient",
    },
  ],
  errorCodes: {
    invalid_client_id: "invalid_client",
    inactive_user: "invalid_grant",
    inactive_org: "invalid_grant",
  },
  // Rotation is a per-app policy; when on, the answer carries the new refresh token and it
  // is stored, but the old one keeps working until the new one is used.
  rotatesRefreshToken: false,
  // The app calls its org at `instance_url`, not at a fixed host.
  appValues: { answer: ["instance_url", "id"], callback: [] },
  authorization: { url: "https://{login_host}/services/oauth2/authorize" },
  // The OpenID Connect userinfo endpoint of the login host: 403 or 401 for a dead token.
  validation: { kind: "identity", url: "https://{login_host}/services/oauth2/userinfo" },
  // RFC 7009 without client authentication; revoking the refresh token revokes its access
  // tokens. Production's host: a sandbox integration sets its revocationUrl on test.salesforce.com.
  revocation: {
    kind: "rfc7009",
    url: "https://login.salesforce.com/services/oauth2/revoke",
    clientAuth: "none",
  },
});
