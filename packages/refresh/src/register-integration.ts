import { randomUUID } from "node:crypto";
import type { KeyRing } from "@evergreen/crypto";
import type { BodyFormat, ClientAuth, Integration, PrismaClient } from "@evergreen/db";
import type { Logger } from "@evergreen/observability";
import type { ProviderId } from "@evergreen/providers";
import type { RefreshQueues } from "./refresh-queues";
import { refreshJob } from "./schedule";
import { scheduleOrDefer } from "./schedule-or-defer";
import { sealClientSecret } from "./token-cipher";

export interface IntegrationDeps {
  readonly prisma: PrismaClient;
  readonly keyRing: KeyRing;
  readonly queue: RefreshQueues;
  readonly log: Logger;
}

/** An OAuth client's configuration, already checked by the caller. */
export interface IntegrationRegistration {
  readonly key: string;
  readonly provider: ProviderId;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly tokenUrl?: string | undefined;
  readonly clientAuth?: ClientAuth | undefined;
  readonly bodyFormat?: BodyFormat | undefined;
  readonly scopes?: readonly string[] | undefined;
  readonly refreshBufferSeconds?: number | undefined;
  /** Access token lifetime when an answer states none (Salesforce's session timeout). */
  readonly accessTokenLifetimeSeconds?: number | undefined;
  /** Connect flow: overrides the provider's authorization URL. */
  readonly authorizationUrl?: string | undefined;
  /** Connect flow: extra authorization URL parameters. */
  readonly authorizationParams?: Readonly<Record<string, string>> | undefined;
  /** Connect flow: where users may be sent back (see return-urls.ts), normalized. */
  readonly returnUrls?: readonly string[] | undefined;
  /** Revoke on delete: overrides the provider's revocation URL (RFC 7009). */
  readonly revocationUrl?: string | undefined;
  /** RFC 7662 endpoint validation uses over the provider's own way, already checked. */
  readonly introspectionUrl?: string | undefined;
  /** Periodic validation at the provider; off when absent. */
  readonly validateIntervalSeconds?: number | undefined;
  /** Generic `oauth2` only: what its server does with a refresh token it has replaced. */
  readonly refreshTokenRotation?: RefreshTokenRotation | undefined;
}

/**
 * What a generic server does with a refresh token once it has issued a new one: refuses it
 * (`rotates`), or keeps accepting it (`reusable`: Keycloak without "Revoke Refresh Token",
 * most servers that send a new one on every answer).
 */
export type RefreshTokenRotation = "rotates" | "reusable";

/** Rounds of "create, else update" before giving up on a key that keeps changing. */
const MAX_TRIES = 3;

/**
 * Creates or updates the integration with this key. The client secret is sealed for the
 * id of the row that holds it: two first registrations at once both try to create, one
 * row wins, and the loser updates the winner's row with a secret sealed for the winner's
 * id (sealing for its own fresh id left a secret no refresh could open). An update
 * retries the integration's connections in `error`, since it may have fixed them.
 */
export async function registerIntegration(
  deps: IntegrationDeps,
  input: IntegrationRegistration,
): Promise<{ readonly integration: Integration; readonly created: boolean }> {
  const { prisma, keyRing } = deps;
  const fields = (id: string) => ({
    provider: input.provider,
    clientId: input.clientId,
    clientSecret: sealClientSecret(keyRing, id, input.clientSecret),
    tokenUrl: input.tokenUrl ?? null,
    clientAuth: input.clientAuth ?? null,
    bodyFormat: input.bodyFormat ?? null,
    scopes: [...(input.scopes ?? [])],
    refreshBufferSeconds: input.refreshBufferSeconds ?? null,
    accessTokenLifetimeSeconds: input.accessTokenLifetimeSeconds ?? null,
    authorizationUrl: input.authorizationUrl ?? null,
    authorizationParams: { ...input.authorizationParams },
    returnUrls: [...(input.returnUrls ?? [])],
    revocationUrl: input.revocationUrl ?? null,
    introspectionUrl: input.introspectionUrl ?? null,
    validateIntervalSeconds: input.validateIntervalSeconds ?? null,
    refreshTokenRotation: input.refreshTokenRotation ?? null,
  });
  for (let tries = 1; tries <= MAX_TRIES; tries += 1) {
    const existing = await prisma.integration.findUnique({
      where: { key: input.key },
      select: { id: true, provider: true, tokenUrl: true },
    });
    if (!existing) {
      const id = randomUUID();
      // ON CONFLICT DO NOTHING: nothing comes back when another registration created the
      // key first; the next round updates its row.
      const [created] = await prisma.integration.createManyAndReturn({
        data: [{ id, key: input.key, ...fields(id) }],
        skipDuplicates: true,
      });
      if (created) return { integration: created, created: true };
      continue;
    }
    try {
      const integration = await prisma.integration.update({
        where: { id: existing.id },
        data: {
          ...fields(existing.id),
          // Another server may rotate where the old one did not: learned again (ADR 0016).
          ...(existing.provider !== input.provider || existing.tokenUrl !== (input.tokenUrl ?? null)
            ? { refreshTokensRotate: null }
            : {}),
        },
      });
      await retryFailedConnections(deps, integration);
      return { integration, created: false };
    } catch (error) {
      // Deleted since we read it: the next round creates it again.
      if ((error as { code?: unknown }).code !== "P2025") throw error;
    }
  }
  throw new Error(`integration ${input.key} changed under ${MAX_TRIES} registration attempts`);
}

/**
 * Connections in `error` stopped because the provider refused this integration's
 * configuration (SPEC §2); an update may have fixed it, so they are refreshed now. A job
 * that cannot be queued is added by the scheduler's next sweep (the row is due).
 */
async function retryFailedConnections(
  { prisma, queue, log }: IntegrationDeps,
  integration: Integration,
): Promise<void> {
  const now = new Date();
  const rows = await prisma.$transaction(async (tx) => {
    const updated = await tx.connection.updateManyAndReturn({
      where: { integrationId: integration.id, status: "error" },
      data: {
        status: "active",
        nextRefreshAt: now,
        consecutiveFailures: 0,
        consecutiveUnknown: 0,
        version: { increment: 1 },
      },
      select: { id: true, version: true },
    });
    await tx.connectionEvent.createMany({
      data: updated.map((row) => ({
        connectionId: row.id,
        integrationId: integration.id,
        type: "updated" as const,
        message: "integration updated: refresh retried",
      })),
    });
    return updated;
  });
  if (rows.length === 0) return;
  await scheduleOrDefer(
    log,
    { integration: integration.key },
    queue.addBulk(
      rows.map((row) => refreshJob({ connectionId: row.id, version: row.version }, now, now)),
    ),
  );
  log.info(
    { integration: integration.key, connections: rows.length },
    "retrying connections in error",
  );
}
