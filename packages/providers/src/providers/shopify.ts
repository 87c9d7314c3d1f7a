import { defineProvider } from "../define-provider";

/**
 * Shopify, with expiring offline access tokens. The shop is the host: metadata `shop`
 * (`acme.myshopify.com`, from the app, or from the callback's `shop`) fills it, and only a
 * `*.myshopify.com` name passes, so metadata cannot send the client secret elsewhere.
 */
export const shopify = defineProvider({
  id: "shopify",
  displayName: "Shopify",
  tokenUrl: "https://{shop}/admin/oauth/access_token",
  placeholders: {
    // A single DNS label under myshopify.com: no dots, no port, no userinfo, ASCII only.
    shop: { pattern: /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.myshopify\.com$/, default: "" },
  },
  clientAuth: "body",
  // Asks for an expiring offline token (1 hour, refresh token 90 days) at the exchange;
  // without it Shopify issues a non-expiring one with no refresh token.
  extraParams: { expiring: "1" },
  fallbackLifetimeSeconds: 3600,
  // Each refresh replaces the refresh token; the previous one stays valid until the new
  // access token is used, which is the grace part B's in-doubt refresh relies on.
  rotatesRefreshToken: true,
  reuseGrace: "until_new_token_used",
  appValues: { answer: [], callback: ["shop"] },
  authorization: {
    url: "https://{shop}/admin/oauth/authorize",
    // Shopify's scopes are comma-separated.
    scopeSeparator: ",",
    pkce: false,
  },
  // The Admin API takes the token in `X-Shopify-Access-Token`, not as a Bearer token, so no
  // identity call fits; a dead token shows at the next refresh.
  validation: null,
  // Shopify has no token revocation endpoint: an app is uninstalled, or its access
  // revoked by the merchant (DELETE api_permissions/current, with the access token).
  revocation: null,
});
