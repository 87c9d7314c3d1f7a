import { defineProvider } from "../define-provider";

/** Login with Amazon (also Amazon Ads), by region: North America, Europe, Far East. */
export const amazon = defineProvider({
  id: "amazon",
  displayName: "Login with Amazon",
  tokenUrl: "https://api.amazon.{region}/auth/o2/token",
  placeholders: {
    // Metadata names the region; only these three hosts can be reached.
    region: { values: { na: "com", eu: "co.uk", fe: "co.jp" }, default: "na" },
  },
  clientAuth: "body",
  // Long-lived and often absent from the answer: keep the stored one.
  rotatesRefreshToken: false,
  // Login with Amazon's profile call, on the region's host as the token endpoint.
  validation: { kind: "identity", url: "https://api.amazon.{region}/user/profile" },
  authorization: {
    // Users sign in on a regional host that is not the token endpoint's: the same region
    // metadata picks it, from a fixed map again.
    url: "https://{region}/ap/oa",
    placeholders: {
      region: {
        values: {
          na: "www.amazon.com",
          eu: "eu.account.amazon.com",
          fe: "apac.account.amazon.com",
        },
        default: "na",
      },
    },
  },
  // Login with Amazon has no public revocation endpoint: users remove an app's access on
  // their Amazon account page. A deleted connection's grant lives on at Amazon.
  revocation: null,
});
