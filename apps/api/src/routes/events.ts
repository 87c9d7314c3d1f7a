import { Prisma, type PrismaClient, type WebhookEvent } from "@evergreen/db";
import { WEBHOOK_EVENT_TYPES, webhookPayload } from "@evergreen/webhooks";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import {
  defineRoute,
  isoTime,
  queryInteger,
  registerRoute,
  responseSchema,
  uuidInput,
} from "../route";

export interface EventRoutesDeps {
  readonly prisma: PrismaClient;
}

/** PostgreSQL's bigint, the type of a transaction id in the feed's cursor. */
const MAX_BIGINT = 2n ** 63n - 1n;

const eventsQuery = z.strictObject({
  after: z
    .string()
    .transform((value, ctx) => {
      const [txid = "", id = ""] = Buffer.from(value, "base64url").toString("utf8").split(".");
      // 19 digits can still pass PostgreSQL's bigint, which would be a 500.
      if (
        /^\d{1,19}$/.test(txid) &&
        BigInt(txid) <= MAX_BIGINT &&
        z.string().uuid().safeParse(id).success
      ) {
        return { txid: BigInt(txid), id };
      }
      ctx.addIssue({ code: "custom", message: "not a cursor this API returned" });
      return z.NEVER;
    })
    .optional()
    .describe("the `nextCursor` of the last page read; from the start without"),
  connection: uuidInput.optional().describe("only this connection's events"),
  type: z.enum(WEBHOOK_EVENT_TYPES).optional(),
  limit: queryInteger(1, 200, 50),
});

const eventFields = {
  type: z.enum(WEBHOOK_EVENT_TYPES),
  timestamp: isoTime,
  data: z.strictObject({
    connectionId: z.string(),
    integration: z.string(),
    externalId: z.string(),
    status: z
      .enum(["active", "expired", "needs_reauth", "error", "deleted"])
      .describe("the connection's, as it was then"),
    error: z.strictObject({ code: z.string(), message: z.string().nullable() }).nullable(),
  }),
};

// The body of a webhook (webhookPayload). No route answers it: it is named so that the
// document (and the SDK's verifyWebhook) describes what receivers get.
responseSchema(
  "WebhookEvent",
  z.strictObject(eventFields),
  "The body of a webhook delivery: a connection's change of state, never a token.",
);

const feedEvent = responseSchema(
  "FeedEvent",
  z.strictObject({ id: z.string(), ...eventFields }),
  "A webhook event as the feed lists it, with its id.",
);

const eventPage = responseSchema(
  "EventPage",
  z.strictObject({
    data: z.array(feedEvent),
    nextCursor: z
      .string()
      .nullable()
      .describe(
        "pass back as `after`: after this page's last event, or where the client was when nothing new has committed; null only for an empty feed read from the start",
      ),
    hasMore: z.boolean().describe("more events follow now: ask again at once"),
  }),
);

/** The event feed route, declared (route.ts): its validation and its documentation. */
export const eventRoutes = {
  list: defineRoute({
    method: "GET",
    url: "/v1/events",
    // Events hold no token, like connection views: any key that may see those.
    scope: ["tokens:read", "connections:write"],
    tag: "events",
    summary: "The webhook events as a feed, oldest first, for apps that would rather poll",
    description:
      "Keyset paged in commit order: an event shows once every transaction older than it has ended, so a cursor never skips one.",
    query: eventsQuery,
    responses: { 200: eventPage },
  }),
};

const encodeCursor = (event: Pick<WebhookEvent, "txid" | "id">) =>
  Buffer.from(`${event.txid}.${event.id}`, "utf8").toString("base64url");

/**
 * `GET /v1/events`: keyset paged in commit-safe order (docs/adr/0011): by the writing
 * transaction's id, and only events of transactions older than every transaction still
 * running. An id or a timestamp alone is drawn before commit, so a slow transaction's event
 * could appear behind a cursor a client has already passed, and be missed for good. A
 * transaction still open holds the feed back until it ends (a refresh write: milliseconds).
 */
export function registerEventRoutes(app: FastifyInstance, { prisma }: EventRoutesDeps): void {
  registerRoute(app, eventRoutes.list, async ({ query }, request) => {
    const rows = await prisma.$queryRaw<WebhookEvent[]>`
      SELECT id, txid, type, "connectionId", integration, "externalId", status, "errorCode",
             "errorMessage", "createdAt"
        FROM webhook_events
       WHERE txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
         ${query.after ? Prisma.sql`AND (txid, id) > (${query.after.txid}, ${query.after.id}::uuid)` : Prisma.empty}
         ${query.connection ? Prisma.sql`AND "connectionId" = ${query.connection}::uuid` : Prisma.empty}
         ${query.type ? Prisma.sql`AND type = ${query.type}` : Prisma.empty}
       ORDER BY txid, id
       LIMIT ${query.limit + 1}`;
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      data: page.map((event) => ({ id: event.id, ...webhookPayload(event) })),
      // Where to resume: after this page's last event, or where the client was when
      // nothing new has committed (the cursor as sent, not as parsed).
      nextCursor: last ? encodeCursor(last) : ((request.query as { after?: string }).after ?? null),
      hasMore: rows.length > query.limit,
    };
  });
}
