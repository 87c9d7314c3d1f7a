import type { KeyRing } from "@evergreen/crypto";
import type { Integration, Prisma } from "@evergreen/db";
import { isProviderId, tokenExpiresAt } from "@evergreen/providers";
import type { RegistrationDeps } from "./register-connection";
import { computeNextRefreshAt, minRefreshIntervalMs } from "./schedule";
import { sealAccessToken, sealRefreshToken } from "./token-cipher";

/**
 * The rules of registering a connection, in one place for both ways of writing it:
 * registerConnection (one row, every entry point) and the import's bulk upsert
 * (import/register-batch.ts, hundreds of rows per statement).
 */

/** Tokens for one user of an integration, as the registration rules need them. */
export interface RegistrationTokens {
  readonly externalId: string;
  readonly accessToken: string;
  /** Absent: a connection that has one keeps it (Google sends none after the first consent). */
  readonly refreshToken?: string | undefined;
  /** Seconds from now; one under a second counts as absent. */
  readonly expiresIn?: number | undefined;
  /** One not in the future counts as absent. */
  readonly expiresAt?: Date | undefined;
  readonly scope?: string | undefined;
  /** @defaultValue "Bearer" */
  readonly tokenType?: string | undefined;
  /** Replaces the stored metadata when given. */
  readonly metadata?: Record<string, unknown> | undefined;
  /**
   * Values the provider stated that the app needs later (Salesforce `instance_url`, Intuit
   * `realmId`): laid over the metadata, the given one or else the stored one.
   */
  readonly providerValues?: Readonly<Record<string, string>> | undefined;
  /** When the refresh token dies, where the provider said (a code exchange's answer). */
  readonly refreshTokenExpiresAt?: Date | undefined;
}

/** When the access token ends and when its first refresh is planned. */
export interface RegistrationTiming {
  readonly expiresAt: Date | null;
  readonly plannedRefreshAt: Date | null;
  /** SPEC §2's shortest interval after the connection's last refresh, if it had one. */
  readonly minIntervalMs: number;
}

/**
 * Expiry held to the rules a provider's answer is held to (SPEC §2: an expiry not in the
 * future counts as absent, then the provider's fallback lifetime applies), and the first
 * refresh by SPEC's rule (or spread over the import's window).
 */
export function registrationTiming(
  deps: Pick<RegistrationDeps, "settings" | "random" | "spreadWindowSeconds">,
  integration: Integration,
  input: RegistrationTokens,
  now: Date,
): RegistrationTiming {
  const expiresAt = tokenExpiresAt(
    isProviderId(integration.provider) ? integration.provider : "oauth2",
    {
      expiresInMs: input.expiresIn === undefined ? null : input.expiresIn * 1000,
      expiresAtMs: input.expiresAt === undefined ? null : input.expiresAt.getTime(),
    },
    now,
    integration.accessTokenLifetimeSeconds,
  );
  const plannedRefreshAt = computeNextRefreshAt({
    expiresAt,
    issuedAt: now,
    bufferSeconds: integration.refreshBufferSeconds ?? deps.settings.defaultBufferSeconds,
    // SPEC §2's shortest interval counts from the last refresh, and a registration is none:
    // a token that lives 10 s is refreshed after about 5 s, not after it has expired.
    minIntervalMs: 0,
    random: deps.random,
    spreadWindowMs:
      deps.spreadWindowSeconds === undefined ? undefined : deps.spreadWindowSeconds * 1000,
  });
  return {
    expiresAt,
    plannedRefreshAt,
    minIntervalMs: minRefreshIntervalMs(deps.settings.retryBaseDelayMs),
  };
}

/**
 * The planned refresh, but never sooner than SPEC §2's shortest interval after the
 * connection's last one: tokens re-sent right after a refresh (an app re-posting what it
 * holds, with a short lifetime) would otherwise have the provider asked again at once.
 */
function firstRefreshAt(
  timing: RegistrationTiming,
  existing: ExistingConnection | undefined,
): Date | null {
  const planned = timing.plannedRefreshAt;
  const last = existing?.lastRefreshedAt;
  if (!planned || !last) return planned;
  return new Date(Math.max(planned.getTime(), last.getTime() + timing.minIntervalMs));
}

/** A stored connection as a registration finds it, locked until its transaction ends. */
export interface ExistingConnection {
  readonly id: string;
  readonly externalId: string;
  readonly version: number;
  readonly status: string;
  /** Not `active`, or in a failure streak: fresh tokens end that, and apps hear of it. */
  readonly troubled: boolean;
  /** A refresh holds a live claim on the row (ADR 0008). */
  readonly refreshInFlight: boolean;
  /**
   * A refresh claimed the row and never wrote an answer (its holder died): it may have
   * sent the stored refresh token (docs/adr/0016).
   */
  readonly claimAbandoned: boolean;
  readonly accessToken: string;
  readonly refreshToken: string | null;
  readonly refreshTokenExpiresAt: Date | null;
  readonly reauthSoonNotifiedFor: Date | null;
  readonly inDoubtSince: Date | null;
  readonly lastRefreshedAt: Date | null;
  readonly scope: string | null;
  readonly metadata: Prisma.JsonValue;
}

/**
 * The integration's connections with these external ids, `FOR UPDATE`: the row lock makes
 * what is read here (is a refresh token stored? a refresh in flight?) hold until the write.
 * Rows are locked in id order, the order every batch of writes takes.
 */
export function lockExistingConnections(
  tx: Prisma.TransactionClient,
  integrationId: string,
  externalIds: readonly string[],
): Promise<ExistingConnection[]> {
  return tx.$queryRaw<ExistingConnection[]>`
    SELECT id::text, "externalId", version, status::text, "accessToken", "refreshToken",
           "refreshTokenExpiresAt", "reauthSoonNotifiedFor", "inDoubtSince", "lastRefreshedAt", scope,
           metadata,
           (status <> 'active' OR "lastErrorAt" IS NOT NULL) AS troubled,
           ("claimVersion" = version AND "claimExpiresAt" > now()) IS TRUE AS "refreshInFlight",
           ("claimVersion" = version AND "claimExpiresAt" <= now()) IS TRUE AS "claimAbandoned"
      FROM connections
     WHERE "integrationId" = ${integrationId}::uuid AND "externalId" = ANY(${externalIds}::text[])
     ORDER BY id
       FOR UPDATE`;
}

/**
 * Keeping the stored refresh token while a refresh is in flight would bump the version
 * under it: its answer (a rotated refresh token) would lose the fence and be dropped, and
 * the token kept would be one the provider has revoked. Such a registration waits.
 */
export function mustWaitForRefresh(
  input: RegistrationTokens,
  existing: ExistingConnection | undefined,
): boolean {
  return input.refreshToken === undefined && existing?.refreshInFlight === true;
}

/** Every column a registration writes, as the row is after it (id, keys and version aside). */
export interface RegisteredColumns {
  readonly accessToken: string;
  readonly refreshToken: string | null;
  readonly refreshTokenExpiresAt: Date | null;
  /** The refresh token end `connection.reauth_soon` announced; a new grant has had none. */
  readonly reauthSoonNotifiedFor: Date | null;
  readonly inDoubtSince: Date | null;
  readonly tokenType: string;
  readonly scope: string | null;
  readonly expiresAt: Date | null;
  readonly status: "active";
  readonly nextRefreshAt: Date | null;
  readonly consecutiveFailures: 0;
  readonly consecutiveUnknown: 0;
  readonly lastErrorCode: null;
  readonly lastErrorMessage: null;
  readonly lastErrorAt: null;
  readonly metadata: Prisma.InputJsonValue;
}

/**
 * What a registration writes. Tokens are sealed for the id of the row they are stored in (a
 * ciphertext is bound to its row). Fresh tokens make the connection `active` whatever state
 * it was in, with its failure history cleared. An absent refresh token leaves the stored one
 * in place, and its known end, unless the provider refused it; a new one's end is what the
 * provider said, if anything (a code exchange's answer; an app hands over no such thing),
 * and it ends any doubt about the old one (docs/adr/0016). The provider's values are laid
 * over the metadata (its word for its own instance URL wins over a stale copy). A connection
 * holding a refresh token is scheduled to be refreshed; one without, to be stopped when its
 * access token expires.
 */
export function registeredColumns(
  keyRing: KeyRing,
  id: string,
  input: RegistrationTokens,
  existing: ExistingConnection | undefined,
  timing: RegistrationTiming,
): RegisteredColumns {
  const sent = input.refreshToken;
  // The stored row whose refresh token stays, if any. Not one the provider refused
  // (`needs_reauth`): kept, it would be sent again, retrying a dead grant (SPEC §2). Fresh
  // tokens without one leave the connection with none: its access token is served until it
  // expires, then it needs authorizing again.
  const kept = sent === undefined && existing?.status !== "needs_reauth" ? existing : undefined;
  const refreshToken =
    sent === undefined ? (kept?.refreshToken ?? null) : sealRefreshToken(keyRing, id, sent);
  return {
    accessToken: sealAccessToken(keyRing, id, input.accessToken),
    refreshToken,
    refreshTokenExpiresAt:
      sent === undefined
        ? (kept?.refreshTokenExpiresAt ?? null)
        : (input.refreshTokenExpiresAt ?? null),
    reauthSoonNotifiedFor: kept?.reauthSoonNotifiedFor ?? null,
    inDoubtSince: kept?.inDoubtSince ?? null,
    tokenType: input.tokenType ?? "Bearer",
    scope: input.scope ?? null,
    expiresAt: timing.expiresAt,
    status: "active",
    // Without a refresh token, the job comes when the access token expires: the worker then
    // finds nothing to refresh with and stops the connection (needs_reauth, with its webhook),
    // so that its status says what the token route answers.
    nextRefreshAt: refreshToken === null ? timing.expiresAt : firstRefreshAt(timing, existing),
    consecutiveFailures: 0,
    consecutiveUnknown: 0,
    lastErrorCode: null,
    lastErrorMessage: null,
    lastErrorAt: null,
    metadata: {
      ...((input.metadata ?? existing?.metadata ?? {}) as Record<string, unknown>),
      ...input.providerValues,
    } as Prisma.InputJsonValue,
  };
}

/**
 * The connection event a registration records, and the webhook event apps hear: a new
 * connection is `connection.created`; fresh tokens end whatever trouble the connection was
 * in (needs_reauth, a failure streak), so apps that heard of it hear it is over.
 */
export function registrationEvents(existing: ExistingConnection | undefined): {
  readonly event: "created" | "updated";
  readonly webhook: "connection.created" | "connection.recovered" | null;
} {
  if (!existing) return { event: "created", webhook: "connection.created" };
  return { event: "updated", webhook: existing.troubled ? "connection.recovered" : null };
}
