import { PROVIDERS } from "./registry";
import type { ProviderId } from "./types";

/** Longest lifetime believed: an absurd one (`expires_in: 1e300`) would be an Invalid Date. */
const MAX_LIFETIME_MS = 10 * 365 * 24 * 3600 * 1000;
/**
 * Shortest lifetime believed. `expires_in: 0.001` or an `expires_at` a few milliseconds
 * ahead is no lifetime a provider means; taken at its word it would be refreshed at once,
 * forever, rotating at full speed.
 */
const MIN_LIFETIME_MS = 1_000;

/** What a token's issuer (a provider's answer, an app registering tokens) said of its expiry. */
export interface StatedExpiry {
  /** Lifetime from `now`, in milliseconds. */
  readonly expiresInMs?: number | null;
  /** Absolute expiry, in epoch milliseconds. */
  readonly expiresAtMs?: number | null;
}

/**
 * When a token expires (SPEC §2, expiry sanity): its stated lifetime, else its stated
 * expiry time; one that is not in the future (or under a second ahead) counts as absent,
 * and with none usable the provider's fallback lifetime applies. Null means the token
 * does not expire (a provider whose fallback is null, such as GitHub OAuth apps).
 */
export function tokenExpiresAt(
  provider: ProviderId,
  stated: StatedExpiry,
  now: Date,
  /** The integration's lifetime for tokens that state none; else the provider's fallback. */
  fallbackLifetimeSeconds?: number | null,
): Date | null {
  const latest = now.getTime() + MAX_LIFETIME_MS;
  const usable = (at: number) => Number.isFinite(at) && at >= now.getTime() + MIN_LIFETIME_MS;
  const { expiresInMs, expiresAtMs } = stated;
  if (typeof expiresInMs === "number" && usable(now.getTime() + expiresInMs)) {
    return new Date(Math.min(now.getTime() + expiresInMs, latest));
  }
  if (typeof expiresAtMs === "number" && usable(expiresAtMs)) {
    return new Date(Math.min(expiresAtMs, latest));
  }
  const fallback = fallbackLifetimeSeconds ?? PROVIDERS[provider].fallbackLifetimeSeconds;
  return fallback === null ? null : new Date(now.getTime() + fallback * 1000);
}

/**
 * When a refresh token itself dies, from the lifetime a provider states for it
 * (`refresh_token_expires_in`, Intuit's `x_refresh_token_expires_in`); null when it states
 * none or an unusable one. Held to the bounds of access tokens: the value is stored beside
 * a rotated refresh token, and an Invalid Date would fail that write.
 */
export function refreshTokenExpiresAt(lifetimeSeconds: number | null, now: Date): Date | null {
  if (lifetimeSeconds === null || !(lifetimeSeconds * 1000 >= MIN_LIFETIME_MS)) return null;
  return new Date(now.getTime() + Math.min(lifetimeSeconds * 1000, MAX_LIFETIME_MS));
}
