import { defineProvider } from "../define-provider";

/**
 * Any RFC 6749 server. The integration supplies `tokenUrl` (and `authorizationUrl` for the
 * connect flow, `revocationUrl` for revoke on delete); every default applies.
 */
export const oauth2 = defineProvider({
  id: "oauth2",
  displayName: "Generic OAuth 2.0",
  tokenUrl: null,
  // RFC 7009 where the integration names a `revocationUrl`; without one, nothing is revoked.
  revocation: { kind: "rfc7009", url: null, clientAuth: "token_endpoint" },
  // The values SPEC §3 names for `extra`, handed to the app when a server sends them: a
  // Salesforce-like or Zoho-like server run through the generic definition has no other way.
  appValues: { answer: ["instance_url", "api_domain"], callback: ["realmId"] },
  // RFC 6749 §6 leaves rotation to the server: the integration's answers tell (ADR 0016).
  rotatesRefreshToken: "learned",
});
