import { amazon } from "./providers/amazon";
import { atlassian } from "./providers/atlassian";
import { box } from "./providers/box";
import { discord } from "./providers/discord";
import { dropbox } from "./providers/dropbox";
import { github } from "./providers/github";
import { google } from "./providers/google";
import { hubspot } from "./providers/hubspot";
import { intuit } from "./providers/intuit";
import { linkedin } from "./providers/linkedin";
import { microsoft } from "./providers/microsoft";
import { notion } from "./providers/notion";
import { oauth2 } from "./providers/oauth2";
import { okta } from "./providers/okta";
import { pinterest } from "./providers/pinterest";
import { reddit } from "./providers/reddit";
import { salesforce } from "./providers/salesforce";
import { shopify } from "./providers/shopify";
import { slack } from "./providers/slack";
import { slackUser } from "./providers/slack-user";
import { spotify } from "./providers/spotify";
import { strava } from "./providers/strava";
import { twitch } from "./providers/twitch";
import { x } from "./providers/x";
import { xero } from "./providers/xero";
import { zoho } from "./providers/zoho";
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
  slack,
  slack_user: slackUser,
  salesforce,
  hubspot,
  intuit,
  atlassian,
  shopify,
  strava,
  twitch,
  reddit,
  zoho,
  okta,
  x,
} satisfies Record<ProviderId, ProviderDefinition>;
