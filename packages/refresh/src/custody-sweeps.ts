import { DecryptionError } from "@evergreen/crypto";
import type { PrismaClient } from "@evergreen/db";
import { recordWebhookEvent } from "@evergreen/webhooks";
import {
  type ValidationDeps,
  ValidationFailedError,
  ValidationUnsupportedError,
  validateConnection,
} from "./validate-connection";

export interface ValidationSweepResult {
  readonly validated: number;
  readonly revoked: number;
  /**
   * No verdict (provider down, no way to validate, a token whose key the ring lacks): tried
   * again an interval later.
   */
  readonly failed: number;
}

/**
 * Validates up to `limit` active connections whose integration sets
 * `validateIntervalSeconds` and whose last validation is that old, least recently
 * validated first. Each row is stamped (`lastValidatedAt`) as it is picked, under SKIP
 * LOCKED: scheduler replicas pick different rows, and a provider that gives no verdict is
 * asked again an interval later, not on every sweep. Access tokens past their expiry are
 * left out: renewing them is the refresh's job (see validateConnection).
 */
export async function validateDueConnections(
  deps: ValidationDeps,
  { limit }: { readonly limit: number },
): Promise<ValidationSweepResult> {
  const picked = await deps.prisma.$queryRaw<{ id: string }[]>`
    UPDATE connections c SET "lastValidatedAt" = now()
      FROM (SELECT c2.id FROM connections c2
              JOIN integrations i ON i.id = c2."integrationId"
             WHERE c2.status = 'active' AND i."validateIntervalSeconds" IS NOT NULL
               AND (c2."expiresAt" IS NULL OR c2."expiresAt" > now())
               AND (c2."lastValidatedAt" IS NULL OR c2."lastValidatedAt"
                    <= now() - make_interval(secs => i."validateIntervalSeconds"))
             ORDER BY c2."lastValidatedAt" NULLS FIRST
             LIMIT ${limit}
             FOR UPDATE OF c2 SKIP LOCKED) due
     WHERE c.id = due.id
    RETURNING c.id`;
  let validated = 0;
  let revoked = 0;
  let failed = 0;
  // One at a time: a sweep's batch is small, and a provider is not hit in bursts by it.
  for (const { id } of picked) {
    try {
      const result = await validateConnection(deps, id);
      if (result) validated += 1;
      if (result?.revoked) revoked += 1;
    } catch (error) {
      // A key missing from the ring (keys:status names the rows) fails this row, not the
      // sweep: the rows picked after it are stamped already and would wait an interval.
      if (
        !(
          error instanceof ValidationFailedError ||
          error instanceof ValidationUnsupportedError ||
          error instanceof DecryptionError
        )
      ) {
        throw error;
      }
      failed += 1;
    }
  }
  return { validated, revoked, failed };
}

/**
 * Announces `connection.reauth_soon` (webhook and connection event) for connections whose
 * refresh token ends within `withinMs`: the user must consent again before then.
 * `reauthSoonNotifiedFor` keeps the end announced (new tokens from the app clear it: a new
 * grant). A later end is announced only once the announced one has passed with the
 * connection still alive; a sooner one at once. A refresh token whose lifetime slides (each
 * refresh's token ends a day after it) moved its end with every refresh, and each new end was
 * announced: a warning every few minutes for a grant that never ends while it is refreshed;
 * now one a day. Up to `limit` per call; rows are locked (SKIP LOCKED) so replicas announce
 * each end once. Returns how many were announced.
 */
export async function announceReauthSoon(
  prisma: PrismaClient,
  { withinMs, limit }: { readonly withinMs: number; readonly limit: number },
): Promise<number> {
  return prisma.$transaction(async (tx) => {
    const due = await tx.$queryRaw<
      { id: string; integrationId: string; externalId: string; status: string; key: string }[]
    >`
      UPDATE connections c SET "reauthSoonNotifiedFor" = c."refreshTokenExpiresAt"
        FROM (SELECT c2.id FROM connections c2
               WHERE c2.status IN ('active', 'expired')
                 AND c2."refreshTokenExpiresAt" > now()
                 AND c2."refreshTokenExpiresAt" <= now() + make_interval(secs => ${withinMs / 1000})
                 AND (c2."reauthSoonNotifiedFor" IS NULL
                      OR c2."reauthSoonNotifiedFor" <= now()
                      OR c2."refreshTokenExpiresAt" < c2."reauthSoonNotifiedFor")
               LIMIT ${limit}
               FOR UPDATE OF c2 SKIP LOCKED) due, integrations i
       WHERE c.id = due.id AND i.id = c."integrationId"
      RETURNING c.id, c."integrationId", c."externalId", c.status::text AS status, i.key`;
    if (due.length === 0) return 0;
    await tx.connectionEvent.createMany({
      data: due.map((row) => ({
        connectionId: row.id,
        integrationId: row.integrationId,
        type: "reauth_soon" as const,
        message: "the refresh token ends soon: the user must authorize again before then",
      })),
    });
    for (const row of due) {
      await recordWebhookEvent(tx, {
        type: "connection.reauth_soon",
        connectionId: row.id,
        integration: row.key,
        externalId: row.externalId,
        status: row.status as "active" | "expired",
      });
    }
    return due.length;
  });
}
