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
  type WebhookEventType,
  WebhookUrlError,
} from "@evergreen/webhooks";
import type { Queue } from "bullmq";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { auditActor } from "../auth";
import { HttpError } from "../http-errors";
import {
  defineRoute,
  errorResponse,
  isoTime,
  queryInteger,
  registerRoute,
  requestSchema,
  responseSchema,
  uuidInput,
} from "../route";

export interface WebhookRoutesDeps {
  readonly prisma: PrismaClient;
  readonly endpoints: WebhookEndpointStore;
  readonly queue: Queue<DeliveryJobPayload>;
  /** ALLOW_INSECURE_TOKEN_URLS, with the development loopback allowance. */
  readonly allowInsecureUrls: InsecureTokenUrls;
  /** The delivering processes' egress policy. */
  readonly egressPolicy: EgressPolicy;
  /** How long a manual retry is retried for. @defaultValue 3 days */
  readonly retryWindowMs?: number;
}

const eventType = z.enum(WEBHOOK_EVENT_TYPES);

const webhookInput = requestSchema(
  "WebhookInput",
  z.strictObject({
    url: z.string().max(2048),
    events: z.array(eventType).min(1).max(WEBHOOK_EVENT_TYPES.length),
  }),
  "`url` must use https (plain http only where ALLOW_INSECURE_TOKEN_URLS allows it), carry no credentials, and not be a literal internal address that EGRESS_ALLOWLIST does not cover.",
);

const deliveriesQuery = z.strictObject({
  limit: queryInteger(1, 100, 20),
  cursor: z
    .string()
    .transform((value, ctx) => {
      const [at = "", id = ""] = Buffer.from(value, "base64url").toString("utf8").split("|");
      // As toISOString wrote it for a delivery, so from 1970 on: JavaScript takes dates
      // (-100000..., the year 0000) that PostgreSQL's timestamp refuses, which would be a 500.
      const createdAt = new Date(at);
      if (
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(at) &&
        createdAt.getTime() >= 0 &&
        z.string().uuid().safeParse(id).success
      ) {
        return { createdAt, id };
      }
      ctx.addIssue({ code: "custom", message: "not a cursor this API returned" });
      return z.NEVER;
    })
    .optional(),
});

const endpointFields = {
  id: z.string(),
  url: z.string(),
  events: z.array(eventType),
  disabledAt: isoTime
    .nullable()
    .describe("set when the receiver answered 410 Gone; nothing is sent to it any more"),
  createdAt: isoTime,
  updatedAt: isoTime,
};

const webhookSchema = responseSchema(
  "Webhook",
  z.strictObject(endpointFields),
  "A webhook endpoint as the API shows it: never its signing secret.",
);

const webhookWithSecret = responseSchema(
  "WebhookWithSecret",
  z.strictObject({
    ...endpointFields,
    secret: z.string().describe("`whsec_...`: store it, it is never shown again"),
  }),
  "A webhook endpoint with its signing secret, shown only in this answer (create, rotate-secret).",
);

const webhookList = responseSchema("WebhookList", z.strictObject({ data: z.array(webhookSchema) }));

const deliverySchema = responseSchema(
  "WebhookDelivery",
  z.strictObject({
    id: z.string(),
    eventId: z.string().describe("the `webhook-id` header: the same for every attempt"),
    eventType,
    status: z.enum(["pending", "succeeded", "failed"]),
    attempts: z.array(
      z.strictObject({
        attempt: z.number().int().describe("0 for the first"),
        at: isoTime,
        durationMs: z.number().int(),
        statusCode: z.number().int().nullable().describe("null when no answer came"),
        outcome: z
          .string()
          .describe(
            "success, http_error, gone, timeout, unreachable, interrupted or refused_by_policy",
          ),
      }),
    ),
    nextAttemptAt: isoTime.nullable(),
    deliveredAt: isoTime.nullable(),
    createdAt: isoTime,
  }),
  "One event for one endpoint, with every attempt made.",
);

const deliveryPage = responseSchema(
  "WebhookDeliveryPage",
  z.strictObject({
    data: z.array(deliverySchema),
    nextCursor: z.string().nullable().describe("pass back as `cursor` for the next page"),
  }),
);

/** What a client sees of an endpoint: never its secret (shown once, on create and rotate). */
function endpointView(row: WebhookEndpoint): z.output<typeof webhookSchema> {
  return {
    id: row.id,
    url: row.url,
    // Only ever written from the validated event types of the input.
    events: row.events as WebhookEventType[],
    disabledAt: row.disabledAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function deliveryView(
  row: WebhookDelivery & { event: { type: string }; attemptLog: WebhookAttempt[] },
): z.output<typeof deliverySchema> {
  const iso = (date: Date | null) => date?.toISOString() ?? null;
  return {
    id: row.id,
    eventId: row.eventId,
    // Only ever written by recordWebhookEvent, whose input is typed.
    eventType: row.event.type as WebhookEventType,
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

const idParams = z.strictObject({ id: uuidInput });
const NOT_FOUND = "no webhook endpoint with this id";
const notFound = () => new HttpError(404, "not_found", NOT_FOUND);
const deliveryNotFound = () => new HttpError(404, "not_found", "no delivery with this id");

const tag = "webhooks";

/** The webhook endpoint routes, declared (route.ts): their validation and their documentation. */
export const webhookRoutes = {
  create: defineRoute({
    method: "POST",
    url: "/v1/webhooks",
    scope: "admin",
    tag,
    summary: "Create a webhook endpoint (its signing secret is shown this once)",
    body: webhookInput,
    responses: { 201: webhookWithSecret },
  }),
  list: defineRoute({
    method: "GET",
    url: "/v1/webhooks",
    scope: "admin",
    tag,
    summary: "List webhook endpoints",
    responses: { 200: webhookList },
  }),
  read: defineRoute({
    method: "GET",
    url: "/v1/webhooks/:id",
    scope: "admin",
    tag,
    summary: "Read a webhook endpoint",
    params: idParams,
    notFound: NOT_FOUND,
    responses: { 200: webhookSchema },
  }),
  remove: defineRoute({
    method: "DELETE",
    url: "/v1/webhooks/:id",
    scope: "admin",
    tag,
    summary: "Delete a webhook endpoint",
    description: "Its pending deliveries go with it: nothing more is sent.",
    params: idParams,
    notFound: NOT_FOUND,
    responses: { 204: { description: "Deleted." } },
  }),
  rotateSecret: defineRoute({
    method: "POST",
    url: "/v1/webhooks/:id/rotate-secret",
    scope: "admin",
    tag,
    summary: "Give an endpoint a new signing secret (shown this once)",
    description:
      "The old secret keeps signing alongside the new one for 24 hours: verify with either while you switch.",
    params: idParams,
    notFound: NOT_FOUND,
    responses: { 200: webhookWithSecret },
  }),
  deliveries: defineRoute({
    method: "GET",
    url: "/v1/webhooks/:id/deliveries",
    scope: "admin",
    tag,
    summary: "List an endpoint's deliveries, newest first, keyset paged",
    params: idParams,
    notFound: NOT_FOUND,
    query: deliveriesQuery,
    responses: { 200: deliveryPage },
  }),
  retryDelivery: defineRoute({
    method: "POST",
    url: "/v1/webhooks/:id/deliveries/:deliveryId/retry",
    scope: "admin",
    tag,
    summary: "Send a delivery again now",
    description:
      "Same `webhook-id` (receivers dedupe on it). If it fails, it is retried with backoff for another retry window (3 days). 409 while the endpoint is disabled.",
    params: z.strictObject({ id: uuidInput, deliveryId: uuidInput }),
    notFound: "no webhook endpoint with this id, or no delivery of it with this id",
    responses: {
      202: deliverySchema,
      409: errorResponse("`endpoint_disabled`: the endpoint answered 410 Gone; create it anew."),
    },
  }),
};

const withAttempts = {
  event: { select: { type: true } },
  attemptLog: { orderBy: { attempt: "asc" } },
} as const;

export function registerWebhookRoutes(app: FastifyInstance, deps: WebhookRoutesDeps): void {
  const { prisma, endpoints } = deps;

  registerRoute(app, webhookRoutes.create, async ({ body }, request, reply) => {
    let url: string;
    try {
      url = checkWebhookUrl(body.url, deps.allowInsecureUrls);
    } catch (error) {
      if (!(error instanceof WebhookUrlError)) throw error;
      throw new HttpError(400, "invalid_request", `url: ${error.message}`);
    }
    // A name is resolved here too, so that `localhost` is refused now rather than at each
    // delivery for three days; the check at every delivery, after DNS, stays the real guard.
    if (await deps.egressPolicy.refusesUrlNow(url)) {
      throw new HttpError(
        400,
        "invalid_request",
        "url: the host is, or resolves to, a loopback, private or other internal address that EGRESS_ALLOWLIST does not cover",
      );
    }
    const { endpoint, secret } = await endpoints.create({ url, events: body.events });
    audit(request, "webhook_endpoint_created", endpoint.id);
    return reply.status(201).send({ ...endpointView(endpoint), secret });
  });

  registerRoute(app, webhookRoutes.list, async () => {
    const rows = await prisma.webhookEndpoint.findMany({ orderBy: { createdAt: "asc" } });
    return { data: rows.map(endpointView) };
  });

  registerRoute(app, webhookRoutes.read, async ({ params }) => {
    const row = await prisma.webhookEndpoint.findUnique({ where: { id: params.id } });
    if (!row) throw notFound();
    return endpointView(row);
  });

  registerRoute(app, webhookRoutes.remove, async ({ params }, request, reply) => {
    const { count } = await prisma.webhookEndpoint.deleteMany({ where: { id: params.id } });
    if (count === 0) throw notFound();
    audit(request, "webhook_endpoint_deleted", params.id);
    return reply.status(204).send();
  });

  registerRoute(app, webhookRoutes.rotateSecret, async ({ params }, request) => {
    const rotated = await endpoints.rotateSecret(params.id);
    if (!rotated) throw notFound();
    audit(request, "webhook_secret_rotated", params.id);
    return { ...endpointView(rotated.endpoint), secret: rotated.secret };
  });

  /** Keyset paged on (createdAt, id). */
  registerRoute(app, webhookRoutes.deliveries, async ({ params: { id }, query }) => {
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

  registerRoute(app, webhookRoutes.retryDelivery, async ({ params }, _request, reply) => {
    const { id, deliveryId } = params;
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
  });
}

/** A change to where, or with what secret, webhooks are signed and sent: never the secret. */
function audit(
  request: FastifyRequest,
  event: "webhook_endpoint_created" | "webhook_endpoint_deleted" | "webhook_secret_rotated",
  endpointId: string,
): void {
  request.server.audit.security({ ...auditActor(request), event, endpointId });
}
