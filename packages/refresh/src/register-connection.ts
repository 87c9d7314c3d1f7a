import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Connection, Integration } from "@evergreen/db";
import { isProviderId, tokenExpiresAt } from "@evergreen/providers";
import { recordWebhookEvent } from "@evergreen/webhooks";
import type { RefreshSettings } from "./refresh-connection";
import type { IntegrationDeps } from "./register-integration";
import { computeNextRefreshAt, enqueueRefresh, minRefreshIntervalMs } from "./schedule";
import { scheduleOrDefer } from "./schedule-or-defer";
import { sealAccessToken, sealRefreshToken } from "./token-cipher";

/** What registering an integration needs, plus the scheduling settings. */
export interface RegistrationDeps extends IntegrationDeps {
  readonly settings: Pick<RefreshSettings, "defaultBufferSeconds" | "retryBaseDelayMs">;
  /** @defaultValue () => new Date() */
  readonly now?: () => Date;
  /** @defaultValue Math.random */
  readonly random?: () => number;
  /**
   * Bulk imports: spread first refreshes over this many seconds before the buffer rather
   * than SPEC's 0..10 % of it (see computeNextRefreshAt). @defaultValue undefined
   */
  readonly spreadWindowSeconds?: number | undefined;
}

/** Tokens an app (or an OAuth callback, a code exchange, an import) hands over for one user. */
export interface ConnectionRegistration {
  /** The integration's key. */
  readonly integration: string;
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

export interface RegisteredConnection {
  readonly connection: Connection;
  readonly integration: Integration;
  /** False when the (integration, externalId) connection existed and was updated. */
  readonly created: boolean;
}

export class UnknownIntegrationError extends Error {
  override name = "UnknownIntegrationError";
  constructor(readonly key: string) {
    super("no integration with this key");
  }
}

/** A write that lost a race to a concurrent first registration is tried once more. */
const MAX_TRIES = 2;
/** How often a registration that keeps the stored refresh token looks for a refresh to end. */
const REFRESH_POLL_MS = 50;

/**
 * A refresh holds a live claim on the row (ADR 0008): its answer, on the way, may carry the
 * only refresh token a rotating provider still accepts.
 */
class RefreshInFlight extends Error {
  override name = "RefreshInFlight";
}

/**
 * Registers a connection: upsert by (integration, externalId), tokens sealed for the row
 * they are stored in, expiry held to the rules a provider's answer is held to (SPEC §2:
 * an expiry not in the future counts as absent, then the provider's fallback lifetime
 * applies), an event row (and a webhook event: `connection.created`, or `connection.recovered`
 * for a connection that was in trouble), and the next refresh scheduled. Fresh tokens make the
 * connection `active` whatever state it was in, with its failure history cleared.
 *
 * The row is stored before the job is queued: with Redis down the registration still
 * succeeds and the scheduler's sweep adds the job from `nextRefreshAt`.
 */
export async function registerConnection(
  deps: RegistrationDeps,
  input: ConnectionRegistration,
): Promise<RegisteredConnection> {
  const { prisma } = deps;
  const integration = await prisma.integration.findUnique({ where: { key: input.integration } });
  if (!integration) throw new UnknownIntegrationError(input.integration);
  const now = (deps.now ?? (() => new Date()))();
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
    minIntervalMs: minRefreshIntervalMs(deps.settings.retryBaseDelayMs),
    random: deps.random,
    spreadWindowMs:
      deps.spreadWindowSeconds === undefined ? undefined : deps.spreadWindowSeconds * 1000,
  });

  for (let tries = 1; ; tries += 1) {
    try {
      const { connection, created } = await write(deps, integration, input, {
        expiresAt,
        plannedRefreshAt,
      });
      if (connection.nextRefreshAt) {
        await scheduleOrDefer(
          deps.log,
          { connection: connection.id },
          enqueueRefresh(
            deps.queue,
            { connectionId: connection.id, version: connection.version },
            connection.nextRefreshAt,
            now,
          ),
        );
      }
      return { connection, integration, created };
    } catch (error) {
      // Bounded by the claim's lease: a claim whose holder died runs out.
      if (error instanceof RefreshInFlight) {
        tries -= 1;
        await sleep(REFRESH_POLL_MS);
        continue;
      }
      // A concurrent first registration of the same user (a double-submitted callback)
      // created the row first: the next try finds it, locks it and updates it.
      if (tries >= MAX_TRIES || (error as { code?: unknown }).code !== "P2002") throw error;
    }
  }
}

/**
 * One transaction: the row lock makes "is a refresh token stored?" hold until the update,
 * so a registration without one schedules exactly when the row keeps one.
 *
 * @throws RefreshInFlight when it would keep the stored refresh token while a refresh holds
 * a live claim on the row.
 */
function write(
  { prisma, keyRing }: RegistrationDeps,
  integration: Integration,
  input: ConnectionRegistration,
  timing: { readonly expiresAt: Date | null; readonly plannedRefreshAt: Date | null },
): Promise<{ connection: Connection; created: boolean }> {
  return prisma.$transaction(async (tx) => {
    const [existing] = await tx.$queryRaw<
      {
        id: string;
        hasRefreshToken: boolean;
        refreshInFlight: boolean;
        troubled: boolean;
        metadata: unknown;
      }[]
    >`
      SELECT id, metadata, "refreshToken" IS NOT NULL AS "hasRefreshToken",
             (status <> 'active' OR "lastErrorAt" IS NOT NULL) AS troubled,
             ("claimVersion" = version AND "claimExpiresAt" > now()) IS TRUE AS "refreshInFlight"
        FROM connections
       WHERE "integrationId" = ${integration.id}::uuid AND "externalId" = ${input.externalId}
         FOR UPDATE`;
    // Keeping the stored refresh token while a refresh is in flight would bump the version
    // under it: its answer (a rotated refresh token) would lose the fence and be dropped,
    // and the token kept would be one the provider has revoked. Wait for it to be stored.
    if (input.refreshToken === undefined && existing?.refreshInFlight) throw new RefreshInFlight();
    // Sealed for the id of the row they are stored in: a ciphertext is bound to its row.
    const id = existing?.id ?? randomUUID();
    const refreshable = input.refreshToken !== undefined || existing?.hasRefreshToken === true;
    const fields = {
      accessToken: sealAccessToken(keyRing, id, input.accessToken),
      tokenType: input.tokenType ?? "Bearer",
      scope: input.scope ?? null,
      expiresAt: timing.expiresAt,
      status: "active" as const,
      nextRefreshAt: refreshable ? timing.plannedRefreshAt : null,
      consecutiveFailures: 0,
      consecutiveUnknown: 0,
      lastErrorCode: null,
      lastErrorMessage: null,
      lastErrorAt: null,
      ...metadataChange(input, existing?.metadata),
    };
    const sealedRefreshToken =
      input.refreshToken === undefined
        ? undefined
        : sealRefreshToken(keyRing, id, input.refreshToken);
    const connection = existing
      ? await tx.connection.update({
          where: { id },
          // An absent refresh token leaves the stored one in place, and its known end; a new
          // one's end is unknown (an app hands over no such thing).
          data: {
            ...fields,
            refreshToken: sealedRefreshToken,
            // A new refresh token also ends any doubt about the old one (docs/adr/0016).
            ...(sealedRefreshToken === undefined
              ? {}
              : {
                  refreshTokenExpiresAt: input.refreshTokenExpiresAt ?? null,
                  inDoubtSince: null,
                  inDoubtResent: false,
                }),
            version: { increment: 1 },
          },
        })
      : await tx.connection.create({
          data: {
            id,
            integrationId: integration.id,
            externalId: input.externalId,
            ...fields,
            refreshToken: sealedRefreshToken ?? null,
            refreshTokenExpiresAt:
              sealedRefreshToken === undefined ? null : (input.refreshTokenExpiresAt ?? null),
          },
        });
    await tx.connectionEvent.create({
      data: {
        connectionId: id,
        integrationId: integration.id,
        type: existing ? "updated" : "created",
      },
    });
    // Fresh tokens end whatever trouble the connection was in (needs_reauth, a failure
    // streak): apps that heard of it hear that it is over.
    if (!existing || existing.troubled) {
      await recordWebhookEvent(tx, {
        type: existing ? "connection.recovered" : "connection.created",
        connectionId: id,
        integration: integration.key,
        externalId: input.externalId,
        status: connection.status,
      });
    }
    return { connection, created: !existing };
  });
}

/**
 * The metadata to store, or nothing to keep the stored one: the given metadata, or else the
 * stored one, with the provider's values laid over it (the provider's word for its own
 * instance URL wins over a stale copy).
 */
function metadataChange(
  input: Pick<ConnectionRegistration, "metadata" | "providerValues">,
  stored: unknown,
): { metadata?: object } {
  const values = input.providerValues;
  if (values === undefined || Object.keys(values).length === 0) {
    return input.metadata ? { metadata: input.metadata } : {};
  }
  const base =
    input.metadata ??
    (stored && typeof stored === "object" && !Array.isArray(stored)
      ? (stored as Record<string, unknown>)
      : {});
  return { metadata: { ...base, ...values } };
}
