import { PROVIDERS } from "./registry";
import type { ProviderId } from "./types";

/** Longest value kept: an instance URL or an API domain, never a document. */
const VALUE_MAX = 2048;

/**
 * The named values found in `source` (a token answer, callback parameters, connection
 * metadata) that are printable strings of bounded length; null when there are none. What
 * the provider sends is stored as is and handed to the app, so it is bounded first.
 */
export function pickAppValues(
  names: readonly string[],
  source: Readonly<Record<string, unknown>> | null | undefined,
): Record<string, string> | null {
  if (!source) return null;
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = Object.hasOwn(source, name) ? source[name] : undefined;
    if (typeof value !== "string") continue;
    const clean = value.trim();
    if (clean !== "" && clean.length <= VALUE_MAX && !/\p{Cc}/u.test(clean)) picked[name] = clean;
  }
  return Object.keys(picked).length > 0 ? picked : null;
}

/**
 * What GET /v1/connections/:id/token returns as `extra`: the provider values the app needs
 * to call the provider's API (Salesforce `instance_url`, Zoho `api_domain`, Intuit
 * `realmId`, Shopify `shop`), from the connection's metadata; null when there are none.
 */
export function appValuesOf(
  provider: ProviderId,
  metadata: unknown,
): Record<string, string> | null {
  if (!metadata || typeof metadata !== "object" || Array.isArray(metadata)) return null;
  const { answer, callback } = PROVIDERS[provider].appValues;
  return pickAppValues([...answer, ...callback], metadata as Record<string, unknown>);
}

/** The definition's callback parameters that the OAuth callback brought (Intuit `realmId`). */
export function callbackAppValues(
  provider: ProviderId,
  query: Readonly<Record<string, unknown>>,
): Record<string, string> | null {
  return pickAppValues(PROVIDERS[provider].appValues.callback, query);
}
