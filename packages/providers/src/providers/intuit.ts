import { defineProvider } from "../define-provider";

/** Intuit QuickBooks Online. */
export const intuit = defineProvider({
  id: "intuit",
  displayName: "Intuit QuickBooks",
  tokenUrl: "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
  clientAuth: "basic",
  fallbackLifetimeSeconds: 3600,
  // The refresh token rolls: 100 days from each refresh (`x_refresh_token_expires_in`,
  // stored as refreshTokenExpiresAt). Its value may change; the latest is always stored,
  // and the previous one keeps working meanwhile, so it is not a single-use rotation.
  rotatesRefreshToken: false,
  // The company the user connected comes back on the callback, never in a token answer;
  // every Accounting API call names it.
  appValues: { answer: [], callback: ["realmId"] },
  authorization: {
    url: "https://appcenter.intuit.com/connect/oauth2",
    // Intuit documents no PKCE for its web apps.
    pkce: false,
  },
  // OpenID Connect userinfo (needs the `openid` scope; without it the answer is 403 and no
  // verdict): 401 for a dead token.
  validation: {
    kind: "identity",
    url: "https://accounts.platform.intuit.com/v1/openid_connect/userinfo",
  },
  // Intuit's revoke endpoint takes a JSON body `{"token": ...}`, not RFC 7009's form; until
  // revocation requests can be JSON, a deleted connection's grant is left to expire (100
  // days unused) or to be disconnected in QuickBooks.
  revocation: null,
});
