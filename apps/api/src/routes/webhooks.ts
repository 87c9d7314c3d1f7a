import type { PrismaClient, WebhookAttempt, WebhookDelivery, WebhookEndpoint } from "@evergreen/db";
import type { EgressPolicy } from "@evergreen/egress";
import type { InsecureTokenUrls } from "@evergreen/providers";
import {
  checkWebhookUrl,
  type DeliveryJobPayload,
  deliveryJob,
  deliveryJobId,
  WEBHOOK_EVENT_TYPES,
  type WebhookEndpointStore,
  WebhookUrlError,
} from "@evergreen/webhooks";
import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requires } from "../auth";
import { HttpError, noFields, parseInput, uuidParam } from "../http-errors";

export interface WebhookRoutesDeps {
  readonly prisma: PrismaClient;
  readonly endpoints: WebhookEndpointStore;
  readonly queue: Queue<DeliveryJobPayload>;
  /** ALLOW_INSECURE_TOKEN_URLS, with the development loopback allowance. */
  readonly allowInsecureUrls: InsecureTokenUrls;
  /** The delivering processes' egress policy, for what it can refuse without DNS. */
  readonly egressPolicy: EgressPolicy;
  /** How long a manual retry is retried for. @defaultValue 3 days */
  readonly retryWindowMs?: number;
}

const endpointInput = z.strictObject({
  url: z.string().max(2048),
  events: z.array(z.enum(WEBHOOK_EVENT_TYPES)).min(1).max(WEBHOOK_EVENT_TYPES.length),
});

const deliveriesQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z
    .string()
    .transform((value, ctx) => {
      const [at = "", id = ""] = Buffer.from(value, "base64url").toString("utf8").split("|");
      const createdAt = new Date(at);
      if (!Number.isNaN(createdAt.getTime()) && z.string().uuid().safeParse(id).success) {
        return { createdAt, id };
      }
      ctx.addIssue({ code: "custom", message: "not a cursor this API returned" });
      return z.NEVER;
    })
    .optional(),
});

/** What a client sees of an endpoint: never its secret (shown once, on create and rotate). */
function endpointView(row: WebhookEndpoint) {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    /** Set when the receiver answered 410 Gone; nothing is sent to it any more. */
    disabledAt: row.disabledAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function deliveryView(
  row: WebhookDelivery & { event: { type: string }; attemptLog: WebhookAttempt[] },
) {
  const iso = (date: Date | null) => date?.toISOString() ?? null;
  return {
    id: row.id,
    eventId: row.eventId,
    eventType: row.event.type,
    status: row.status,
    attempts: row.attemptLog.map((attempt) => ({
      attempt: attempt.attempt,
      at: attempt.startedAt.toISOString(),
      durationMs: attempt.durationMs,
      statusCode: attempt.statusCode,
      outcome: attempt.outcome,
    })),
    nextAttemptAt: iso(row.nextAttemptAt),
    deliveredAt: iso(row.deliveredAt),
    createdAt: row.createdAt.toISOString(),
  };
}

const notFound = () => new HttpError(404, "not_found", "no webhook endpoint with this id");
const deliveryNotFound = () => new HttpError(404, "not_found", "no delivery with this id");

const withAttempts = {
  event: { select: { type: true } },
  attemptLog: { orderBy: { attempt: "asc" } },
} as const;

export function registerWebhookRoutes(app: FastifyInstance, deps: WebhookRoutesDeps): void {
  const { prisma, endpoints } = deps;
  const endpointId = (params: unknown) => uuidParam((params as { id?: unknown }).id, notFound);

  app.post("/v1/webhooks", requires("admin"), async (request, reply) => {
    const input = parseInput(endpointInput, request.body);
    parseInput(noFields, request.query);
    let url: string;
    try {
      url = checkWebhookUrl(input.url, deps.allowInsecureUrls);
    } catch (error) {
      if (!(error instanceof WebhookUrlError)) throw error;
      throw new HttpError(400, "invalid_request", `url: ${error.message}`);
    }
    // Only literal addresses can be refused here; names are checked at every delivery,
    // after DNS, which stays the real guard.
    if (deps.egressPolicy.refusesUrl(url)) {
      throw new HttpError(
        400,
        "invalid_request",
        "url: the host is a loopback, private or other internal address that EGRESS_ALLOWLIST does not cover",
      );
    }
    const { endpoint, secret } = await endpoints.create({ url, events: input.events });
    return reply.status(201).send({ ...endpointView(endpoint), secret });
  });

  app.get("/v1/webhooks", requires("admin"), async (request) => {
    parseInput(noFields, request.query);
    const rows = await prisma.webhookEndpoint.findMany({ orderBy: { createdAt: "asc" } });
    return { data: rows.map(endpointView) };
  });

  app.get("/v1/webhooks/:id", requires("admin"), async (request) => {
    const id = endpointId(request.params);
    parseInput(noFields, request.query);
    const row = await prisma.webhookEndpoint.findUnique({ where: { id } });
    if (!row) throw notFound();
    return endpointView(row);
  });

  /** Deliveries still pending go with it: nothing more is sent. */
  app.delete("/v1/webhooks/:id", requires("admin"), async (request, reply) => {
    const id = endpointId(request.params);
    parseInput(noFields, request.query);
    parseInput(noFields, request.body);
    const { count } = await prisma.webhookEndpoint.deleteMany({ where: { id } });
    if (count === 0) throw notFound();
    return reply.status(204).send();
  });

  /** A new secret, shown once; the old one keeps signing alongside for 24 hours. */
  app.post("/v1/webhooks/:id/rotate-secret", requires("admin"), async (request) => {
    const id = endpointId(request.params);
    parseInput(noFields, request.query);
    parseInput(noFields, request.body);
    const rotated = await endpoints.rotateSecret(id);
    if (!rotated) throw notFound();
    return { ...endpointView(rotated.endpoint), secret: rotated.secret };
  });

  /** Newest first, keyset paged on (createdAt, id). */
  app.get("/v1/webhooks/:id/deliveries", requires("admin"), async (request) => {
    const id = endpointId(request.params);
    const query = parseInput(deliveriesQuery, request.query);
    if ((await prisma.webhookEndpoint.count({ where: { id } })) === 0) throw notFound();
    const { cursor } = query;
    const rows = await prisma.webhookDelivery.findMany({
      where: {
        endpointId: id,
        ...(cursor
          ? {
              OR: [
                { createdAt: { lt: cursor.createdAt } },
                { createdAt: cursor.createdAt, id: { lt: cursor.id } },
              ],
            }
          : {}),
      },
      include: withAttempts,
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      take: query.limit + 1,
    });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      data: page.map(deliveryView),
      nextCursor:
        rows.length > query.limit && last
          ? Buffer.from(`${last.createdAt.toISOString()}|${last.id}`).toString("base64url")
          : null,
    };
  });

  /**
   * Sends the delivery again now, with the same `webhook-id` (receivers dedupe on it), and
   * retries it with backoff for another retry window if it fails. 409 while the endpoint
   * is disabled.
   */
  app.post(
    "/v1/webhooks/:id/deliveries/:deliveryId/retry",
    requires("admin"),
    async (request, reply) => {
      const id = endpointId(request.params);
      const deliveryId = uuidParam(
        (request.params as { deliveryId?: unknown }).deliveryId,
        deliveryNotFound,
      );
      parseInput(noFields, request.query);
      parseInput(noFields, request.body);
      const delivery = await prisma.webhookDelivery.findFirst({
        where: { id: deliveryId, endpointId: id },
        include: { endpoint: { select: { disabledAt: true } } },
      });
      if (!delivery) throw deliveryNotFound();
      if (delivery.endpoint.disabledAt) {
        throw new HttpError(
          409,
          "endpoint_disabled",
          "the endpoint answered 410 Gone; create it anew",
        );
      }
      const now = new Date();
      const windowMs = deps.retryWindowMs ?? 3 * 24 * 3600 * 1000;
      const updated = await prisma.webhookDelivery.update({
        where: { id: deliveryId },
        data: {
          status: "pending",
          nextAttemptAt: now,
          giveUpAt: new Date(now.getTime() + windowMs),
        },
        include: withAttempts,
      });
      const payload = { deliveryId, attempt: updated.attempts };
      // A pending delivery already has this attempt's job, waiting out its backoff: run it now.
      const waiting = await deps.queue.getJob(deliveryJobId(payload));
      if (waiting && (await waiting.isDelayed())) await waiting.promote();
      else {
        const job = deliveryJob(payload, now, now);
        await deps.queue.add(job.name, job.data, job.opts);
      }
      return reply.status(202).send(deliveryView(updated));
    },
  );
}
