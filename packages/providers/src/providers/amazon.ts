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
});
