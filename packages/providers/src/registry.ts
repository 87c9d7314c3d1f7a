import { amazon } from "./providers/amazon";
import { discord } from "./providers/discord";
import { github } from "./providers/github";
import { google } from "./providers/google";
import { microsoft } from "./providers/microsoft";
import { oauth2 } from "./providers/oauth2";
import { spotify } from "./providers/spotify";
import { xero } from "./providers/xero";
import type { ProviderDefinition, ProviderId } from "./types";

/** Every provider strategy; a new provider is one file in providers/ plus one line here. */
export const PROVIDERS = {
  oauth2,
  google,
  microsoft,
  amazon,
  spotify,
  discord,
  github,
  xero,
} satisfies Record<ProviderId, ProviderDefinition>;
