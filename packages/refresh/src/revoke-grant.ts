import { DecryptionError, type KeyRing } from "@evergreen/crypto";
import type { Connection, Integration, Prisma, PrismaClient } from "@evergreen/db";
import type { EgressClient } from "@evergreen/egress";
import type { Logger, Metrics } from "@evergreen/observability";
import {
  backoffMs,
  buildRevocationRequest,
  classifyRevocationAnswer,
  type InsecureTokenUrls,
  isProviderId,
  ProviderConfigError,
  type RevocationResult,
  type RevocationTokenType,
  revocationRuleOf,
  revocationTokenType,
} from "@evergreen/providers";
import type { Queue } from "bullmq";
import { type RevocationJobPayload, revocationJob } from "./revocation-jobs";
import { openAccessToken, openClientSecret, openRefreshToken } from "./token-cipher";

/** A provider that stays down longer than this keeps the grant: the row is dropped. */
export const REVOCATION_GIVE_UP_MS = 24 * 3_600_000;

export interface RevocationSettings {
  readonly timeoutMs: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly allowInsecureTokenUrls: InsecureTokenUrls;
}

export interface RevocationDeps {
  readonly prisma: PrismaClient;
  readonly keyRing: KeyRing;
  readonly egress: EgressClient;
  readonly queue: Queue<RevocationJobPayload>;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly settings: RevocationSettings;
  /** @defaultValue () => new Date() */
  readonly now?: () => Date;
  /** @defaultValue Math.random */
  readonly random?: () => number;
}

/**
 * Inside the delete's transaction: records the grant to revoke, copying the connection's
 * sealed token as is (never opened here). Returns the row's id, or null when the provider
 * offers no revocation or the connection holds no token it would take.
 */
export async function planRevocation(
  tx: Prisma.TransactionClient,
  connection: Pick<Connection, "id" | "accessToken" | "refreshToken">,
  integration: Pick<Integration, "id" | "provider" | "clientId" | "revocationUrl">,
  now: Date,
): Promise<string | null> {
  if (!isProviderId(integration.provider)) return null;
  const rule = revocationRuleOf({ ...integration, provider: integration.provider });
  if (rule === null) return null;
  const tokenType = revocationTokenType(rule, connection.refreshToken !== null);
  const token = tokenType === "refresh_token" ? connection.refreshToken : connection.accessToken;
  if (!token) return null;
  const id = crypto.randomUUID();
  await tx.pendingRevocation.create({
    data: {
      id,
      connectionId: connection.id,
      integrationId: integration.id,
      token,
      tokenType,
      giveUpAt: new Date(now.getTime() + REVOCATION_GIVE_UP_MS),
    },
  });
  return id;
}

export type RevocationRun =
  /** The row is gone or at another attempt: another job did (or does) this one. */
  | { kind: "stale" }
  /** Recorded as an event; the row is gone. */
  | { kind: "done"; outcome: "revoked" | "already_dead" | "failed" | "gave_up" }
  /** The next attempt is queued, due in `delayMs`. */
  | { kind: "retry"; delayMs: number };

/**
 * One attempt at revoking a deleted connection's grant. Claims the attempt on the row
 * (so a duplicate job sends nothing), sends through the egress client, and either records
 * the outcome or queues the next attempt: `Retry-After` when the provider gave one
 * (RFC 7009 §2.2.1), else exponential backoff with jitter, until the row's `giveUpAt`.
 */
export async function revokeGrant(
  deps: RevocationDeps,
  { revocationId, attempt }: RevocationJobPayload,
): Promise<RevocationRun> {
  const { prisma } = deps;
  const now = deps.now?.() ?? new Date();
  const claimed = await prisma.pendingRevocation.updateMany({
    where: { id: revocationId, attempts: attempt },
    data: { attempts: attempt + 1 },
  });
  if (claimed.count === 0) return { kind: "stale" };
  try {
    return await attemptClaimed(deps, { revocationId, attempt }, now);
  } catch (error) {
    // The worker retries this job under the same attempt: give the claim back, or that
    // retry would find the row at the next attempt and drop it as stale, leaving the grant
    // (and its sealed token) until a worker restart requeued it. If PostgreSQL is what
    // failed, this may fail too: the restart's requeue is then the way back.
    await prisma.pendingRevocation
      .updateMany({
        where: { id: revocationId, attempts: attempt + 1 },
        data: { attempts: attempt },
      })
      .catch(() => undefined);
    throw error;
  }
}

/** The attempt once claimed: send, then record the outcome or queue the next attempt. */
async function attemptClaimed(
  deps: RevocationDeps,
  { revocationId, attempt }: RevocationJobPayload,
  now: Date,
): Promise<RevocationRun> {
  const { prisma, settings } = deps;
  const row = await prisma.pendingRevocation.findUniqueOrThrow({ where: { id: revocationId } });
  const integration = await prisma.integration.findUnique({ where: { id: row.integrationId } });
  const provider = integration?.provider ?? "unknown";
  const finish = (outcome: "revoked" | "already_dead" | "failed" | "gave_up", code?: string) =>
    recordOutcome(deps, row, provider, outcome, code ?? null);
  if (!integration || !isProviderId(integration.provider)) {
    return finish("failed", "integration_deleted");
  }

  const result = await send(deps, row, { ...integration, provider: integration.provider }, now);
  switch (result.outcome) {
    case "revoked":
      return finish("revoked");
    case "already_dead":
    case "failed":
      return finish(result.outcome, result.errorCode);
    case "retry": {
      // Retry-After bounds the backoff from below, never replaces it: `Retry-After: 0` (or a
      // date past) on every 503 would otherwise resend at full speed until giveUpAt.
      const delayMs = Math.max(
        result.retryAfterMs ?? 0,
        backoffMs(settings, attempt + 1, deps.random ?? Math.random),
      );
      if (now.getTime() + delayMs > row.giveUpAt.getTime()) {
        return finish("gave_up", result.errorCode);
      }
      deps.metrics.revocationsTotal.inc({ provider, outcome: "retry" });
      const { name, data, opts } = revocationJob({ revocationId, attempt: attempt + 1 }, delayMs);
      await deps.queue.add(name, data, opts);
      return { kind: "retry", delayMs };
    }
  }
}

/**
 * Queues the current attempt of every pending revocation, for rows whose job was lost (an
 * enqueue that failed after the delete committed, a worker killed between its claim and
 * the next job). Safe to repeat: a job still queued has the same id, and a job for an
 * attempt already claimed does nothing.
 */
export async function requeuePendingRevocations(
  deps: Pick<RevocationDeps, "prisma" | "queue">,
): Promise<number> {
  const rows = await deps.prisma.pendingRevocation.findMany({
    select: { id: true, attempts: true },
  });
  for (const row of rows) {
    const { name, data, opts } = revocationJob({ revocationId: row.id, attempt: row.attempts }, 0);
    await deps.queue.add(name, data, opts);
  }
  return rows.length;
}

/**
 * The connection column a pending revocation's `token` was copied from, by its `tokenType`:
 * the ciphertext is still bound to it (key rotation re-seals it there too).
 */
export function revokedTokenColumn(tokenType: string): "refreshToken" | "accessToken" {
  return tokenType === "refresh_token" ? "refreshToken" : "accessToken";
}

async function send(
  deps: RevocationDeps,
  row: { connectionId: string; token: string; tokenType: string },
  integration: Integration & { provider: Parameters<typeof revocationRuleOf>[0]["provider"] },
  now: Date,
): Promise<RevocationResult> {
  const { keyRing, settings } = deps;
  const rule = revocationRuleOf(integration);
  if (rule === null) return { outcome: "failed", errorCode: "no_revocation_endpoint" };
  const type: RevocationTokenType =
    revokedTokenColumn(row.tokenType) === "refreshToken" ? "refresh_token" : "access_token";
  // Sealed as the connection's own column: it opens only under that id and field.
  const open = type === "refresh_token" ? openRefreshToken : openAccessToken;
  let request: ReturnType<typeof buildRevocationRequest>;
  try {
    request = buildRevocationRequest(
      {
        provider: integration.provider,
        clientId: integration.clientId,
        clientSecret: openClientSecret(keyRing, integration.id, integration.clientSecret),
        clientAuth: integration.clientAuth,
        revocationUrl: integration.revocationUrl,
      },
      rule,
      { value: open(keyRing, row.connectionId, row.token), type },
      { allowInsecureTokenUrls: settings.allowInsecureTokenUrls },
    );
  } catch (error) {
    // A key missing from the ring: retried with backoff until giveUpAt, so an operator who
    // removed a key too early can put it back; never an exception retried every few seconds.
    if (error instanceof DecryptionError) {
      // Counted as the refreshes' are, so that EvergreenDecryptionFailures fires: quietly
      // retried until it gives up, the grant would never be revoked.
      deps.metrics.decryptionFailures.inc({ source: "worker" });
      return { outcome: "retry", errorCode: "undecryptable", retryAfterMs: null };
    }
    if (!(error instanceof ProviderConfigError)) throw error;
    return { outcome: "failed", errorCode: "integration_config" };
  }
  const answer = await deps.egress.send(request, { timeoutMs: settings.timeoutMs });
  if ("failure" in answer) {
    // Timeouts, unreachable hosts and broken answers pass; a refusal by policy or a huge
    // answer does not.
    return answer.failure === "timeout" ||
      answer.failure === "unreachable" ||
      answer.failure === "interrupted"
      ? { outcome: "retry", errorCode: answer.failure, retryAfterMs: null }
      : { outcome: "failed", errorCode: answer.failure };
  }
  return classifyRevocationAnswer(answer, now, settings.retryMaxDelayMs, rule.kind);
}

/** The event (never the token), the metric, and the row gone, in one transaction. */
async function recordOutcome(
  deps: RevocationDeps,
  row: { id: string; connectionId: string; integrationId: string },
  provider: string,
  outcome: "revoked" | "already_dead" | "failed" | "gave_up",
  errorCode: string | null,
): Promise<RevocationRun> {
  const revoked = outcome === "revoked" || outcome === "already_dead";
  await deps.prisma.$transaction([
    deps.prisma.connectionEvent.create({
      data: {
        connectionId: row.connectionId,
        integrationId: row.integrationId,
        type: revoked ? "revoked" : "revocation_failed",
        outcome,
        errorCode,
      },
    }),
    deps.prisma.pendingRevocation.delete({ where: { id: row.id } }),
  ]);
  deps.metrics.revocationsTotal.inc({ provider, outcome });
  deps.log.info({ connection: row.connectionId, outcome, errorCode }, "grant revocation finished");
  return { kind: "done", outcome };
}
