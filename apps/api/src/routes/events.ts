import { Prisma, type PrismaClient, type WebhookEvent } from "@evergreen/db";
import { WEBHOOK_EVENT_TYPES, webhookPayload } from "@evergreen/webhooks";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requires } from "../auth";
import { parseInput } from "../http-errors";

export interface EventRoutesDeps {
  readonly prisma: PrismaClient;
}

const UUID = z.string().uuid();

const eventsQuery = z.strictObject({
  after: z
    .string()
    .transform((value, ctx) => {
      const [txid = "", id = ""] = Buffer.from(value, "base64url").toString("utf8").split(".");
      if (/^\d{1,19}$/.test(txid) && UUID.safeParse(id).success) return { txid: BigInt(txid), id };
      ctx.addIssue({ code: "custom", message: "not a cursor this API returned" });
      return z.NEVER;
    })
    .optional(),
  connection: UUID.transform((id) => id.toLowerCase()).optional(),
  type: z.enum(WEBHOOK_EVENT_TYPES).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

const encodeCursor = (event: Pick<WebhookEvent, "txid" | "id">) =>
  Buffer.from(`${event.txid}.${event.id}`, "utf8").toString("base64url");

/**
 * `GET /v1/events`: the webhook events as a feed, for apps that would rather poll.
 *
 * Keyset paged in commit-safe order (docs/adr/0011): by the writing transaction's id, and
 * only events of transactions older than every transaction still running. An id or a
 * timestamp alone is drawn before commit, so a slow transaction's event could appear
 * behind a cursor a client has already passed, and be missed for good. A transaction
 * still open holds the feed back until it ends (a refresh write: milliseconds).
 */
export function registerEventRoutes(app: FastifyInstance, { prisma }: EventRoutesDeps): void {
  app.get("/v1/events", requires(["tokens:read", "connections:write"]), async (request) => {
    const query = parseInput(eventsQuery, request.query);
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
      // nothing new has committed. Null only for an empty feed asked from the start.
      nextCursor: last ? encodeCursor(last) : ((request.query as { after?: string }).after ?? null),
      hasMore: rows.length > query.limit,
    };
  });
}
