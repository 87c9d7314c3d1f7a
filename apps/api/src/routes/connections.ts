import type { Connection, Integration, PrismaClient } from "@evergreen/db";
import {
  type RefreshDeps,
  type RegistrationDeps,
  refreshJobId,
  registerConnection,
  UnknownIntegrationError,
} from "@evergreen/refresh";
import { recordWebhookEvent } from "@evergreen/webhooks";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { type RouteScope, requires } from "../auth";
import { HttpError, noFields, parseInput } from "../http-errors";
import type { TokenService } from "../token-service";

export interface ConnectionRoutesDeps {
  readonly prisma: PrismaClient;
  /** The refresh path's parts: key ring, queue, parked answers, log, settings. */
  readonly refresh: RefreshDeps;
  readonly tokens: TokenService;
}

const TEN_YEARS_SECONDS = 10 * 365 * 24 * 3600;

/** A connection's metadata, wherever it comes in (connections, connect sessions, exchanges). */
export const metadataInput = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  // Depth first: measuring the size of a value nested thousands deep overflowed the
  // stack (a 500), and Prisma's serializer overflowed on 3000 levels.
  if (nestingDepth(value) > MAX_METADATA_DEPTH) {
    ctx.addIssue({ code: "custom", message: `at most ${MAX_METADATA_DEPTH} levels deep` });
  } else if (JSON.stringify(value).length > 16_384) {
    ctx.addIssue({ code: "custom", message: "at most 16 KiB of JSON" });
  }
});

const connectionInput = z
  .strictObject({
    integration: z.string().min(1).max(64),
    externalId: z.string().min(1).max(256),
    accessToken: z.string().min(1).max(16_384),
    refreshToken: z.string().min(1).max(16_384).optional(),
    // 0 is what some providers send for "unknown": like any lifetime under a second it
    // counts as absent, and the provider's fallback lifetime applies.
    expiresIn: z.number().int().min(0).max(TEN_YEARS_SECONDS).optional(),
    expiresAt: z.iso
      .datetime({ offset: true })
      .transform((value) => new Date(value))
      .optional(),
    scope: z.string().max(4096).optional(),
    tokenType: z.string().min(1).max(64).optional(),
    metadata: metadataInput.optional(),
  })
  .refine((input) => input.expiresIn === undefined || input.expiresAt === undefined, {
    message: "give expiresIn or expiresAt, not both",
    path: ["expiresAt"],
  });

const MAX_METADATA_DEPTH = 32;

/** How deeply a parsed JSON value nests, found without recursion. */
function nestingDepth(value: unknown): number {
  let deepest = 0;
  const pending: [unknown, number][] = [[value, 1]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [node, depth] = next;
    if (typeof node !== "object" || node === null) continue;
    deepest = Math.max(deepest, depth);
    for (const child of Object.values(node)) pending.push([child, depth + 1]);
  }
  return deepest;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The connection id in the path, lowercase as PostgreSQL prints uuids and as the workers
 * name locks and jobs: the same connection must take the same lock whatever case a client
 * writes its id in. An id of any other shape names no connection: 404, like an unknown one.
 */
function connectionId(params: unknown): string {
  const { id } = params as { id: string };
  if (!UUID.test(id)) throw notFound();
  return id.toLowerCase();
}

const notFound = () => new HttpError(404, "not_found", "no connection with this id");

const tokenQuery = z.strictObject({
  // Capped at 30 minutes: asking for more than a provider's token lifetime (often an hour)
  // would refresh on every call.
  minValidity: z.coerce.number().int().min(0).max(1800).default(60),
});

const listQuery = z.strictObject({
  integration: z.string().min(1).max(64).optional(),
  externalId: z.string().min(1).max(256).optional(),
  status: z.enum(["active", "expired", "needs_reauth", "error"]).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .transform((value, ctx) => {
      const id = Buffer.from(value, "base64url").toString("utf8");
      if (z.string().uuid().safeParse(id).success) return id;
      ctx.addIssue({ code: "custom", message: "not a cursor this API returned" });
      return z.NEVER;
    })
    .optional(),
});

/**
 * Views hold no token: any key that reads tokens or writes connections may see them, since
 * a reader finds its connection's id by listing (`?externalId=`) and a writer gets the
 * view back from every write anyway.
 */
const VIEWS: RouteScope = ["tokens:read", "connections:write"];

/** Cursors are opaque to clients: the last id of a page, encoded. */
const encodeCursor = (id: string) => Buffer.from(id, "utf8").toString("base64url");

/** What a client sees of a connection: never a token. */
export function connectionView(row: Connection, integration: Pick<Integration, "key">) {
  const iso = (date: Date | null) => date?.toISOString() ?? null;
  return {
    id: row.id,
    integration: integration.key,
    externalId: row.externalId,
    status: row.status,
    expiresAt: iso(row.expiresAt),
    // SPEC §3: only where the provider stated when the refresh token dies.
    ...(row.refreshTokenExpiresAt
      ? { refreshTokenExpiresAt: row.refreshTokenExpiresAt.toISOString() }
      : {}),
    nextRefreshAt: iso(row.nextRefreshAt),
    lastRefreshedAt: iso(row.lastRefreshedAt),
    refreshCount: row.refreshCount,
    lastError:
      row.lastErrorCode && row.lastErrorAt
        ? {
            code: row.lastErrorCode,
            message: row.lastErrorMessage,
            at: row.lastErrorAt.toISOString(),
          }
        : null,
    metadata: row.metadata,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function registerConnectionRoutes(app: FastifyInstance, deps: ConnectionRoutesDeps): void {
  const { prisma, refresh } = deps;
  const registration: RegistrationDeps = { ...refresh, prisma };

  app.post("/v1/connections", requires("connections:write"), async (request, reply) => {
    const input = parseInput(connectionInput, request.body);
    parseInput(noFields, request.query);
    const { connection, integration, created } = await registerConnection(
      registration,
      input,
    ).catch((error: unknown) => {
      if (!(error instanceof UnknownIntegrationError)) throw error;
      throw new HttpError(400, "invalid_request", `integration: ${error.message}`);
    });
    return reply.status(created ? 201 : 200).send(connectionView(connection, integration));
  });

  /** Keyset pages in id order: stable under inserts, no OFFSET scans. */
  app.get("/v1/connections", requires(VIEWS), async (request) => {
    const query = parseInput(listQuery, request.query);
    const rows = await prisma.connection.findMany({
      where: {
        ...(query.integration ? { integration: { key: query.integration } } : {}),
        ...(query.externalId ? { externalId: query.externalId } : {}),
        ...(query.status ? { status: query.status } : {}),
        ...(query.cursor ? { id: { gt: query.cursor } } : {}),
      },
      include: { integration: true },
      orderBy: { id: "asc" },
      take: query.limit + 1,
    });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      data: page.map((row) => connectionView(row, row.integration)),
      nextCursor: rows.length > query.limit && last ? encodeCursor(last.id) : null,
    };
  });

  app.get("/v1/connections/:id/token", requires("tokens:read"), async (request, reply) => {
    const id = connectionId(request.params);
    const { minValidity } = parseInput(tokenQuery, request.query);
    const token = await deps.tokens.token(id, minValidity);
    // A bearer token: no cache along the way may keep it.
    return reply.header("cache-control", "no-store").send(token);
  });

  app.post("/v1/connections/:id/refresh", requires("connections:write"), async (request) => {
    const id = connectionId(request.params);
    parseInput(noFields, request.query);
    parseInput(noFields, request.body);
    const row = await deps.tokens.refresh(id);
    return connectionView(row, row.integration);
  });

  app.get("/v1/connections/:id", requires(VIEWS), async (request) => {
    const id = connectionId(request.params);
    parseInput(noFields, request.query);
    const row = await prisma.connection.findUnique({
      where: { id },
      include: { integration: true },
    });
    if (!row) throw notFound();
    return connectionView(row, row.integration);
  });

  /**
   * SPEC §2: a deleted connection is gone, tokens included. A provider's answer parked in
   * Redis (sealed tokens, kept up to a week) goes first: if Redis cannot drop it, the
   * request fails (503) with nothing deleted, and the client's retry finishes the job.
   */
  app.delete("/v1/connections/:id", requires("connections:write"), async (request, reply) => {
    const id = connectionId(request.params);
    parseInput(noFields, request.query);
    parseInput(noFields, request.body);
    const row = await prisma.connection.findUnique({
      where: { id },
      include: { integration: true },
    });
    if (!row) throw notFound();
    await refresh.parked.drop(id);
    await prisma.$transaction(async (tx) => {
      await tx.connection.delete({ where: { id } });
      await tx.connectionEvent.create({
        data: { connectionId: id, integrationId: row.integrationId, type: "deleted" },
      });
      await recordWebhookEvent(tx, {
        type: "connection.deleted",
        connectionId: id,
        integration: row.integration.key,
        externalId: row.externalId,
        status: "deleted",
      });
    });
    // The pending job would no-op on the missing row anyway; removing it frees its memory.
    await refresh.queue
      .remove(refreshJobId({ connectionId: id, version: row.version }))
      .catch((err: unknown) =>
        refresh.log.warn({ err, connection: id }, "could not remove the pending job"),
      );
    return reply.status(204).send();
  });
}
