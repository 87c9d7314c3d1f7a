import type { ProviderDefinition } from "../types";

/** Spotify Web API accounts service. */
export const spotify: ProviderDefinition = {
  id: "spotify",
  displayName: "Spotify",
  tokenUrl: "https://accounts.spotify.com/api/token",
  placeholders: {},
  // Spotify's docs show client_secret_basic for the refresh of a confidential client.
  clientAuth: "basic",
  bodyFormat: "form",
  scope: { send: "never" },
  extraParams: {},
  headers: {},
  fallbackLifetimeSeconds: 3600,
  errorsInOkBody: false,
  errorCodes: {},
  descriptionRules: [],
  // Sometimes returns a new refresh token, sometimes none (keep the old one); the answer
  // decides, so the connection is not treated as strictly rotating.
  rotatesRefreshToken: false,
};
