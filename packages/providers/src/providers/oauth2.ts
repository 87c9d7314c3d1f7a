import type { ProviderDefinition } from "../types";

/**
 * Any RFC 6749 token endpoint. The integration supplies `tokenUrl`; client_secret_basic is the
 * RFC's mandatory-to-implement method (§2.3.1), so it is the default.
 */
export const oauth2: ProviderDefinition = {
  id: "oauth2",
  displayName: "Generic OAuth 2.0",
  tokenUrl: null,
  placeholders: {},
  clientAuth: "basic",
  bodyFormat: "form",
  // RFC 6749 §6 makes scope optional and many servers answer invalid_scope to a scope they
  // did not expect on refresh; leaving it out keeps the originally granted scopes.
  scope: { send: "never" },
  extraParams: {},
  headers: {},
  // RFC 6749 §5.1 only RECOMMENDS expires_in. Refreshing a token that would have lived
  // longer costs one request; handing out an expired one is what Evergreen exists to avoid.
  fallbackLifetimeSeconds: 3600,
  errorsInOkBody: false,
  errorCodes: {},
  descriptionRules: [],
  rotatesRefreshToken: false,
};
