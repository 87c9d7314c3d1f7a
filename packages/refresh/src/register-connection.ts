import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Connection, Integration } from "@evergreen/db";
import { recordWebhookEvent } from "@evergreen/webhooks";
import type { RefreshSettings } from "./refresh-connection";
import type { IntegrationDeps } from "./register-integration";
import {
  lockExistingConnections,
  mustWaitForRefresh,
  type RegistrationTiming,
  type RegistrationTokens,
  registeredColumns,
  registrationEvents,
  registrationTiming,
} from "./registration-rules";
import { enqueueRefresh } from "./schedule";
import { scheduleOrDefer } from "./schedule-or-defer";

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
export interface ConnectionRegistration extends RegistrationTokens {
  /** The integration's key. */
  readonly integration: string;
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

/**
 * A row written for integration `key` was refused by its foreign key (Prisma's P2003): the
 * integration was deleted since it was read, as if it had never been there. Anything else
 * is returned as it was.
 */
export function integrationGoneSinceRead(error: unknown, key: string): unknown {
  return (error as { code?: unknown }).code === "P2003" ? new UnknownIntegrationError(key) : error;
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
  const timing = registrationTiming(deps, integration, input, now);

  for (let tries = 1; ; tries += 1) {
    try {
      const { connection, created } = await write(deps, integration, input, timing);
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
      if (tries >= MAX_TRIES || (error as { code?: unknown }).code !== "P2002") {
        throw integrationGoneSinceRead(error, input.integration);
      }
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
  timing: RegistrationTiming,
): Promise<{ connection: Connection; created: boolean }> {
  return prisma.$transaction(async (tx) => {
    const [existing] = await lockExistingConnections(tx, integration.id, [input.externalId]);
    if (mustWaitForRefresh(input, existing)) throw new RefreshInFlight();
    const id = existing?.id ?? randomUUID();
    const columns = registeredColumns(keyRing, id, input, existing, timing);
    const connection = existing
      ? await tx.connection.update({
          where: { id },
          data: {
            ...columns,
            version: { increment: 1 },
            // The stored refresh token stays, and with it the doubt an abandoned claim casts
            // on it: carried to the new version, where the next refresh finds it.
            ...(existing.claimAbandoned && columns.refreshToken === existing.refreshToken
              ? { claimVersion: existing.version + 1 }
              : {}),
          },
        })
      : await tx.connection.create({
          data: { id, integrationId: integration.id, externalId: input.externalId, ...columns },
        });
    const { event, webhook } = registrationEvents(existing);
    await tx.connectionEvent.create({
      data: { connectionId: id, integrationId: integration.id, type: event },
    });
    if (webhook) {
      await recordWebhookEvent(tx, {
        type: webhook,
        connectionId: id,
        integration: integration.key,
        externalId: input.externalId,
        status: connection.status,
      });
    }
    return { connection, created: !existing };
  });
}
