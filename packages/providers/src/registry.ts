import { amazon } from "./providers/amazon";
import { box } from "./providers/box";
import { discord } from "./providers/discord";
import { dropbox } from "./providers/dropbox";
import { github } from "./providers/github";
import { google } from "./providers/google";
import { linkedin } from "./providers/linkedin";
import { microsoft } from "./providers/microsoft";
import { notion } from "./providers/notion";
import { oauth2 } from "./providers/oauth2";
import { pinterest } from "./providers/pinterest";
import { spotify } from "./providers/spotify";
import { xero } from "./providers/xero";
import { zoom } from "./providers/zoom";
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
  zoom,
  dropbox,
  linkedin,
  notion,
  box,
  pinterest,
} satisfies Record<ProviderId, ProviderDefinition>;
