import { defineProvider } from "../define-provider";

/**
 * Any RFC 6749 server. The integration supplies `tokenUrl` (and `authorizationUrl` for the
 * connect flow); every default applies.
 */
export const oauth2 = defineProvider({
  id: "oauth2",
  displayName: "Generic OAuth 2.0",
  tokenUrl: null,
});
