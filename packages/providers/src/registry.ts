import { amazon } from "./providers/amazon";
import { atlassian } from "./providers/atlassian";
import { discord } from "./providers/discord";
import { github } from "./providers/github";
import { google } from "./providers/google";
import { hubspot } from "./providers/hubspot";
import { intuit } from "./providers/intuit";
import { microsoft } from "./providers/microsoft";
import { oauth2 } from "./providers/oauth2";
import { okta } from "./providers/okta";
import { reddit } from "./providers/reddit";
import { salesforce } from "./providers/salesforce";
import { shopify } from "./providers/shopify";
import { slack } from "./providers/slack";
import { slackUser } from "./providers/slack-user";
import { spotify } from "./providers/spotify";
import { strava } from "./providers/strava";
import { twitch } from "./providers/twitch";
import { x } from "./providers/x";
import { zoho } from "./providers/zoho";
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
