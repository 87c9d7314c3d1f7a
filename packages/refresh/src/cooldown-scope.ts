import type { Connection } from "@evergreen/db";
import { connectionTokenHost, isProviderId } from "@evergreen/providers";
import type { RefreshIntegration } from "./connection-store";

/**
 * What a 429 holds back: the integration, or only the connection's own token host where the
 * provider picks one per connection (one Shopify shop's or Okta org's rate limit is not
 * another's, and one tenant must not stall every other for up to the Retry-After cap).
 */
export function cooldownScope(integration: RefreshIntegration, connection: Connection): string {
  const { provider, tokenUrl } = integration;
  const host = isProviderId(provider)
    ? connectionTokenHost({ provider, tokenUrl }, asRecord(connection.metadata))
    : null;
  return host === null ? integration.id : `${integration.id}:${host}`;
}

/** Connection metadata as the provider functions take it (a JSON column may hold anything). */
export function asRecord(value: unknown): Record<string, unknown> {
  return value && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}
