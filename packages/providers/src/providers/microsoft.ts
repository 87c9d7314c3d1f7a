import { defineProvider } from "../define-provider";

/** Microsoft Entra ID, v2.0 endpoint (identity platform). */
export const microsoft = defineProvider({
  id: "microsoft",
  displayName: "Microsoft Entra ID",
  tokenUrl: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
  placeholders: {
    // A tenant GUID, a verified domain, or common/organizations/consumers. Starting with a
    // letter or digit rules out "." and "..", which would climb out of the tenant path.
    tenant: { pattern: /^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$/, default: "common" },
  },
  clientAuth: "body",
  // The v2 endpoint issues a token for one resource, chosen by `scope`; without
  // offline_access the answer carries no new refresh token.
  scope: { send: "configured", ensure: ["offline_access"] },
  errorCodes: {
    // Non-standard codes the v2 token endpoint documents: the user must sign in again
    // (conditional access, MFA, revoked consent), so the grant is as good as dead.
    interaction_required: "invalid_grant",
    consent_required: "invalid_grant",
  },
  descriptionRules: [
    // AADSTS50196 "client request loop": a throttle dressed up as invalid_grant. The grant is
    // fine; killing the connection for it would force a needless re-authorization.
    { error: "invalid_grant", pattern: /\bAADSTS50196\b/, outcome: "transient" },
  ],
  // Each answer carries a new refresh token; the old one is not revoked but should be
  // replaced, and 90 days of inactivity end the chain.
  rotatesRefreshToken: true,
  // "The Microsoft identity platform doesn't revoke old refresh tokens when used to fetch new
  // access tokens": an answer lost in transit leaves the stored token usable, as a grace
  // that never ends would.
  reuseGrace: "until_new_token_used",
  // The application (client) id is a GUID.
  clientIdFormat: {
    pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    rule: "are UUIDs",
  },
  // Graph /me works for tokens whose audience is Graph (User.Read, the default); a token
  // issued for another resource gets 401 there too, so integrations for other APIs should
  // leave validateIntervalSeconds off.
  validation: { kind: "identity", url: "https://graph.microsoft.com/v1.0/me" },
  authorization: {
    url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    // Without offline_access the code grant answers with no refresh token.
    ensureScopes: ["offline_access"],
  },
  // The v2.0 identity platform has no RFC 7009 endpoint. Graph's revokeSignInSessions
  // revokes a user's refresh tokens, but needs User.ReadWrite.All-type rights over the user
  // (an admin's), not the grant an app holds. A deleted connection's grant lives on until
  // the refresh token's inactivity limit.
  revocation: null,
});
