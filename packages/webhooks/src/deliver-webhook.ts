import type { PrismaClient, WebhookEndpoint } from "@evergreen/db";
import type { EgressClient, EgressFailureCode } from "@evergreen/egress";
import type { Logger, Metrics } from "@evergreen/observability";
import { backoffMs, type InsecureTokenUrls, parseRetryAfter } from "@evergreen/providers";
import type { Queue } from "bullmq";
import { checkWebhookUrl, type WebhookEndpointStore, WebhookUrlError } from "./endpoint-store";
import { webhookPayload } from "./event-types";
import { type DeliveryJobPayload, deliveryJob } from "./jobs";
import { signWebhook } from "./signing";

export interface DeliverySettings {
  /** The whole exchange with a receiver. @defaultValue 15000 */
  readonly timeoutMs?: number;
  /** First retry's delay, doubled per attempt. @defaultValue 10000 */
  readonly baseDelayMs?: number;
  /** Longest wait between attempts, Retry-After included. @defaultValue 21600000 (6 h) */
  readonly maxDelayMs?: number;
  /** ALLOW_INSECURE_TOKEN_URLS, with the development loopback allowance. */
  readonly allowInsecureUrls: InsecureTokenUrls;
}

/**
 * The longest one delivery in flight may take to finish: the receiver's timeout, then
 * recording the attempt in PostgreSQL, with margin. Shutdown waits this long, since a
 * delivery cut mid-send is sent again once its claim lapses.
 */
export function webhookDrainMs(settings: DeliverySettings): number {
  return (settings.timeoutMs ?? 15_000) + 5_000;
}

export interface DeliveryDeps {
  readonly prisma: PrismaClient;
  readonly endpoints: WebhookEndpointStore;
  readonly egress: EgressClient;
  readonly queue: Queue<DeliveryJobPayload>;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly settings: DeliverySettings;
  /** @defaultValue () => new Date() */
  readonly now?: () => Date;
  /** @defaultValue Math.random */
  readonly random?: () => number;
}

/** What one attempt came to; the `outcome` label of evergreen_webhook_deliveries_total. */
export type DeliveryOutcome = "success" | "http_error" | "gone" | EgressFailureCode;

export type DeliveryRun =
  | {
      readonly kind: "attempted";
      readonly outcome: DeliveryOutcome;
      /** When the next attempt is due; null when the delivery is finished. */
      readonly nextAttemptAt: Date | null;
    }
  /** Not this job's to send: finished, another attempt, claimed by another process. */
  | { readonly kind: "skipped"; readonly reason: string };

interface Claimed {
  readonly eventId: string;
  readonly endpointId: string;
  readonly giveUpAt: Date;
}

/**
 * One attempt of one delivery: claim it in PostgreSQL, sign, send through the egress
 * client, record the outcome and schedule the next attempt. The claim (fenced by the
 * attempt number) is what keeps two processes from sending one attempt at once, whatever
 * BullMQ does with a stalled job; a process that dies mid-send leaves the claim to run out,
 * and the attempt is sent again (Standard Webhooks receivers dedupe on `webhook-id`).
 */
export async function deliverWebhook(
  deps: DeliveryDeps,
  job: DeliveryJobPayload,
): Promise<DeliveryRun> {
  const now = deps.now ?? (() => new Date());
  const timeoutMs = deps.settings.timeoutMs ?? 15_000;
  const [claimed] = await deps.prisma.$queryRaw<Claimed[]>`
    UPDATE webhook_deliveries
       SET "claimExpiresAt" = now() + make_interval(secs => ${(2 * timeoutMs) / 1000}::float8)
     WHERE id = ${job.deliveryId}::uuid AND attempts = ${job.attempt} AND status = 'pending'
       AND ("claimExpiresAt" IS NULL OR "claimExpiresAt" <= now())
    RETURNING "eventId", "endpointId", "giveUpAt"`;
  if (!claimed) return { kind: "skipped", reason: "not_due" };
  const [endpoint, event] = await Promise.all([
    deps.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: claimed.endpointId } }),
    deps.prisma.webhookEvent.findUniqueOrThrow({ where: { id: claimed.eventId } }),
  ]);
  if (endpoint.disabledAt) {
    await deps.prisma.webhookDelivery.update({
      where: { id: job.deliveryId },
      data: { status: "failed", nextAttemptAt: null, claimExpiresAt: null },
    });
    return { kind: "skipped", reason: "endpoint_disabled" };
  }

  const startedAt = now();
  const started = performance.now();
  const answer = await send(deps, endpoint, event.id, webhookPayload(event), startedAt);
  const durationMs = Math.round(performance.now() - started);
  const finishedAt = now();
  const outcome = classify(answer);
  const statusCode = "status" in answer ? answer.status : null;
  const nextAttemptAt =
    outcome === "success" || outcome === "gone"
      ? null
      : retryAt(deps, job.attempt + 1, answer, finishedAt, claimed.giveUpAt);

  const recorded = deps.prisma.$transaction([
    deps.prisma.webhookDelivery.updateMany({
      where: { id: job.deliveryId, attempts: job.attempt },
      data: {
        attempts: job.attempt + 1,
        status: outcome === "success" ? "succeeded" : nextAttemptAt ? "pending" : "failed",
        nextAttemptAt,
        claimExpiresAt: null,
        lastStatusCode: statusCode,
        lastOutcome: outcome,
        ...(outcome === "success" ? { deliveredAt: finishedAt } : {}),
      },
    }),
    deps.prisma.webhookAttempt.create({
      data: {
        deliveryId: job.deliveryId,
        attempt: job.attempt,
        startedAt,
        durationMs,
        statusCode,
        outcome,
      },
    }),
    // 410 Gone: the receiver says this URL is no more (Standard Webhooks); sending on would
    // only be noise to whoever holds the address next.
    ...(outcome === "gone"
      ? [
          deps.prisma.webhookEndpoint.update({
            where: { id: endpoint.id },
            data: { disabledAt: finishedAt },
          }),
        ]
      : []),
  ]);
  // Deleting an endpoint deletes its deliveries: one deleted while its receiver answered
  // (an app removing the endpoint as soon as it has the last event it wanted) leaves no row
  // to record the attempt on, and nothing to send again.
  const endpointDeleted = await recorded.then(
    () => false,
    async (error: unknown) => {
      if ((await deps.prisma.webhookDelivery.count({ where: { id: job.deliveryId } })) > 0) {
        throw error;
      }
      return true;
    },
  );

  deps.metrics.webhookDeliveries.inc({ event: event.type, outcome });
  if (outcome === "success") {
    deps.metrics.webhookDeliveryLag.observe(
      { event: event.type },
      (finishedAt.getTime() - event.createdAt.getTime()) / 1000,
    );
  }
  if (outcome === "gone")
    deps.log.warn({ endpoint: endpoint.id }, "webhook endpoint disabled: 410");
  if (endpointDeleted) return { kind: "attempted", outcome, nextAttemptAt: null };
  if (nextAttemptAt) {
    const next = deliveryJob(
      { deliveryId: job.deliveryId, attempt: job.attempt + 1 },
      nextAttemptAt,
      finishedAt,
    );
    await deps.queue.add(next.name, next.data, next.opts).catch((err: unknown) => {
      // The row says when; the dispatcher's repair sweep enqueues what is missing.
      deps.log.error(
        { err, delivery: job.deliveryId },
        "could not enqueue the next webhook attempt",
      );
    });
  }
  return { kind: "attempted", outcome, nextAttemptAt };
}

type Answer = Awaited<ReturnType<EgressClient["send"]>>;

async function send(
  deps: DeliveryDeps,
  endpoint: WebhookEndpoint,
  messageId: string,
  payload: ReturnType<typeof webhookPayload>,
  at: Date,
): Promise<Answer> {
  try {
    // Checked again at each delivery: ALLOW_INSECURE_TOKEN_URLS may have changed since.
    checkWebhookUrl(endpoint.url, deps.settings.allowInsecureUrls);
  } catch (error) {
    if (error instanceof WebhookUrlError) return { failure: "refused_by_policy" };
    throw error;
  }
  const body = JSON.stringify(payload);
  return deps.egress.send(
    {
      url: endpoint.url,
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "Evergreen-Webhooks/1",
        ...signWebhook(deps.endpoints.signingSecrets(endpoint, at), messageId, at, body),
      },
      body,
    },
    {
      timeoutMs: deps.settings.timeoutMs ?? 15_000,
      // "Any 2xx is success": a receiver answering with a page of HTML has still taken the
      // event, and its size could only turn that success into a failure.
      discardBody: true,
    },
  );
}

function classify(answer: Answer): DeliveryOutcome {
  if ("failure" in answer) return answer.failure;
  if (answer.status >= 200 && answer.status < 300) return "success";
  return answer.status === 410 ? "gone" : "http_error";
}

/**
 * When attempt `attempt` (1 for the first retry) is due, or null past `giveUpAt`:
 * exponential backoff with jitter, and never before a receiver's `Retry-After`.
 */
function retryAt(
  deps: DeliveryDeps,
  attempt: number,
  answer: Answer,
  now: Date,
  giveUpAt: Date,
): Date | null {
  const baseMs = deps.settings.baseDelayMs ?? 10_000;
  const maxMs = deps.settings.maxDelayMs ?? 6 * 3600 * 1000;
  const backoff = backoffMs(
    { retryBaseDelayMs: baseMs, retryMaxDelayMs: maxMs },
    attempt,
    deps.random ?? Math.random,
  );
  const header = "status" in answer ? answer.headers["retry-after"] : undefined;
  const retryAfter = parseRetryAfter(typeof header === "string" ? header : undefined, now, maxMs);
  const at = new Date(now.getTime() + Math.max(backoff, retryAfter ?? 0));
  return at > giveUpAt ? null : at;
}
