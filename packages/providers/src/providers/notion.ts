import { defineProvider } from "../define-provider";

/** Notion public connections (https://developers.notion.com/reference/refresh-a-token). */
export const notion = defineProvider({
  id: "notion",
  displayName: "Notion",
  tokenUrl: "https://api.notion.com/v1/oauth/token",
  // Notion's OAuth endpoints take Basic client credentials and JSON bodies.
  clientAuth: "basic",
  bodyFormat: "json",
  // "Generating a new access token and new refresh token": treated as rotating; Notion
  // documents no reuse window.
  rotatesRefreshToken: true,
  reuseGrace: null,
  // OAuth client ids of public connections are UUIDs.
  clientIdFormat: {
    pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    rule: "are UUIDs",
  },
  // The bot user of the token; every Notion request must name an API version.
  validation: {
    kind: "identity",
    url: "https://api.notion.com/v1/users/me",
    headers: { "notion-version": "2022-06-28" },
  },
  authorization: {
    url: "https://api.notion.com/v1/oauth/authorize",
    // Public connections are installed by a user.
    params: { owner: "user" },
  },
  // POST /v1/oauth/revoke, Basic client credentials, `{"token": ...}` as JSON.
  revocation: {
    kind: "rfc7009",
    url: "https://api.notion.com/v1/oauth/revoke",
    clientAuth: "token_endpoint",
    bodyFormat: "json",
  },
});
