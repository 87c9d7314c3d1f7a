import { defineProvider } from "../define-provider";

/** Any RFC 6749 token endpoint. The integration supplies `tokenUrl`; every default applies. */
export const oauth2 = defineProvider({
  id: "oauth2",
  displayName: "Generic OAuth 2.0",
  tokenUrl: null,
});
