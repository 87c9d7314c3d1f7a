import { defineProvider } from "../define-provider";

/** Spotify Web API accounts service. */
export const spotify = defineProvider({
  id: "spotify",
  displayName: "Spotify",
  tokenUrl: "https://accounts.spotify.com/api/token",
  // Spotify's docs show client_secret_basic for the refresh of a confidential client.
  clientAuth: "basic",
  // Sometimes returns a new refresh token, sometimes none (keep the old one); the answer
  // decides, so the connection is not treated as strictly rotating.
  rotatesRefreshToken: false,
  // No introspection: the current user's profile is the cheapest authenticated call.
  validation: { kind: "identity", url: "https://api.spotify.com/v1/me" },
  authorization: { url: "https://accounts.spotify.com/authorize" },
  // Spotify offers no revocation endpoint: only the user can remove an app's access, on
  // their account page. A deleted connection's grant lives on at Spotify.
  revocation: null,
});
