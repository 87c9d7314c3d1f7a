import { defineProvider } from "../define-provider";

/** Pinterest API v5 (https://developers.pinterest.com/docs/getting-started/authentication/). */
export const pinterest = defineProvider({
  id: "pinterest",
  displayName: "Pinterest",
  tokenUrl: "https://api.pinterest.com/v5/oauth/token",
  clientAuth: "basic",
  // Access tokens live about 30 days.
  fallbackLifetimeSeconds: 2_592_000,
  // With continuous refresh each answer carries a refresh token (stored when present) with
  // its refresh_token_expires_in; Pinterest does not document the old one dying, so the
  // grant is not treated as rotating.
  rotatesRefreshToken: false,
  validation: { kind: "identity", url: "https://api.pinterest.com/v5/user_account" },
  authorization: {
    url: "https://www.pinterest.com/oauth/",
    // Pinterest lists scopes comma-separated: `boards:read,pins:read`.
    scopeSeparator: ",",
  },
  // API v5 documents no token revocation: users remove an app under their account's
  // security settings. A deleted connection's grant lives on at Pinterest.
  revocation: null,
});
