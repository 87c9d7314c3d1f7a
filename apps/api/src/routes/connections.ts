import { randomUUID } from "node:crypto";
import type { KeyRing } from "@evergreen/crypto";
import type { Connection, Integration, PrismaClient } from "@evergreen/db";
import type { Logger } from "@evergreen/observability";
import { isProviderId, tokenExpiresAt } from "@evergreen/providers";
import {
  computeNextRefreshAt,
  enqueueRefresh,
  minRefreshIntervalMs,
  type RefreshJobPayload,
  refreshJobId,
  sealAccessToken,
  sealRefreshToken,
} from "@evergreen/refresh";
import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { HttpError, parseInput } from "../http-errors";
import { scheduleOrDefer } from "../schedule-or-defer";
import type { TokenService } from "../token-service";

export interface ConnectionRoutesDeps {
  readonly prisma: PrismaClient;
  readonly keyRing: KeyRing;
  readonly queue: Queue<RefreshJobPayload>;
  readonly log: Logger;
  /** REFRESH_BUFFER_SECONDS. */
  readonly defaultBufferSeconds: number;
  /** RETRY_BASE_DELAY_MS: sets the shortest interval between refreshes. */
  readonly retryBaseDelayMs: number;
  readonly tokens: TokenService;
}

const TEN_YEARS_SECONDS = 10 * 365 * 24 * 3600;

const connectionInput = z
  .object({
    integration: z.string().min(1).max(64),
    externalId: z.string().min(1).max(256),
    accessToken: z.string().min(1).max(16_384),
    refreshToken: z.string().min(1).max(16_384).optional(),
    expiresIn: z.number().int().min(1).max(TEN_YEARS_SECONDS).optional(),
    expiresAt: z.string().datetime({ offset: true }).optional(),
    scope: z.string().max(4096).optional(),
    tokenType: z.string().min(1).max(64).optional(),
    metadata: z
      .record(z.string(), z.unknown())
      .refine((value) => JSON.stringify(value).length <= 16_384, "at most 16 KiB of JSON")
      .optional(),
  })
  .refine((input) => !(input.expiresIn && input.expiresAt), {
    message: "give expiresIn or expiresAt, not both",
    path: ["expiresAt"],
  });

// Lowercase, as PostgreSQL prints uuids and as the workers name locks and jobs: the same
// connection must take the same lock whatever case a client writes its id in.
const idParam = z.object({
  id: z
    .string()
    .uuid("must be a connection id (UUID)")
    .transform((id) => id.toLowerCase()),
});

const tokenQuery = z.object({
  // Capped at 30 minutes: asking for more than a provider's token lifetime (often an hour)
  // would refresh on every call.
  minValidity: z.coerce.number().int().min(0).max(1800).default(60),
});

const listQuery = z.object({
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
  const { prisma, keyRing, queue, log } = deps;

  /**
   * Stores the tokens, then schedules. If scheduling fails (Redis down), the request still
   * succeeds: the row carries nextRefreshAt and the scheduler's next sweep adds the job
   * (see scheduleOrDefer).
   */
  app.post("/v1/connections", async (request, reply) => {
    const input = parseInput(connectionInput, request.body);
    const integration = await prisma.integration.findUnique({ where: { key: input.integration } });
    if (!integration) {
      throw new HttpError(400, "invalid_request", "integration: no integration with this key");
    }
    const now = new Date();
    // The rules a provider's answer is held to: an expiry not in the future counts as
    // absent, and with none the provider's fallback lifetime applies.
    const expiresAt = tokenExpiresAt(
      isProviderId(integration.provider) ? integration.provider : "oauth2",
      {
        expiresInMs: input.expiresIn === undefined ? null : input.expiresIn * 1000,
        expiresAtMs: input.expiresAt === undefined ? null : Date.parse(input.expiresAt),
      },
      now,
    );
    const nextRefreshAt = input.refreshToken
      ? computeNextRefreshAt({
          expiresAt,
          issuedAt: now,
          bufferSeconds: integration.refreshBufferSeconds ?? deps.defaultBufferSeconds,
          minIntervalMs: minRefreshIntervalMs(deps.retryBaseDelayMs),
        })
      : null;
    // Fresh tokens from the app: whatever state the grant was in (needs_reauth, error,
    // expired), it is active again and its failure history starts over.
    const write = async () => {
      const existing = await prisma.connection.findUnique({
        where: {
          integrationId_externalId: { integrationId: integration.id, externalId: input.externalId },
        },
      });
      const id = existing?.id ?? randomUUID();
      const fields = {
        accessToken: sealAccessToken(keyRing, id, input.accessToken),
        refreshToken: input.refreshToken ? sealRefreshToken(keyRing, id, input.refreshToken) : null,
        tokenType: input.tokenType ?? "Bearer",
        scope: input.scope ?? null,
        expiresAt,
        status: "active" as const,
        nextRefreshAt,
        consecutiveFailures: 0,
        lastErrorCode: null,
        lastErrorMessage: null,
        lastErrorAt: null,
        ...(input.metadata ? { metadata: input.metadata as object } : {}),
      };
      const [row] = await prisma.$transaction([
        existing
          ? prisma.connection.update({
              where: { id },
              data: { ...fields, version: { increment: 1 } },
            })
          : prisma.connection.create({
              data: { id, integrationId: integration.id, externalId: input.externalId, ...fields },
            }),
        prisma.connectionEvent.create({
          data: {
            connectionId: id,
            integrationId: integration.id,
            type: existing ? "updated" : "created",
          },
        }),
      ]);
      return { row, created: !existing };
    };
    // Two first registrations of one user racing (a double-submitted callback): the loser
    // hits the unique (integration, externalId) key and, tried again, updates the winner's row.
    const { row, created } = await write().catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== "P2002") throw error;
      return write();
    });
    const id = row.id;
    if (nextRefreshAt) {
      await scheduleOrDefer(
        log,
        { connection: id },
        enqueueRefresh(queue, { connectionId: id, version: row.version }, nextRefreshAt, now),
      );
    }
    return reply.status(created ? 201 : 200).send(connectionView(row, integration));
  });

  /** Keyset pages in id order: stable under inserts, no OFFSET scans. */
  app.get("/v1/connections", async (request) => {
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

  app.get("/v1/connections/:id/token", async (request, reply) => {
    const { id } = parseInput(idParam, request.params);
    const { minValidity } = parseInput(tokenQuery, request.query);
    const token = await deps.tokens.token(id, minValidity);
    // A bearer token: no cache along the way may keep it.
    return reply.header("cache-control", "no-store").send(token);
  });

  app.post("/v1/connections/:id/refresh", async (request) => {
    const { id } = parseInput(idParam, request.params);
    const row = await deps.tokens.refresh(id);
    return connectionView(row, row.integration);
  });

  app.get("/v1/connections/:id", async (request) => {
    const { id } = parseInput(idParam, request.params);
    const row = await prisma.connection.findUnique({
      where: { id },
      include: { integration: true },
    });
    if (!row) throw new HttpError(404, "not_found", "no connection with this id");
    return connectionView(row, row.integration);
  });

  app.delete("/v1/connections/:id", async (request, reply) => {
    const { id } = parseInput(idParam, request.params);
    const row = await prisma.connection.findUnique({ where: { id } });
    if (!row) throw new HttpError(404, "not_found", "no connection with this id");
    await prisma.$transaction([
      prisma.connection.delete({ where: { id } }),
      prisma.connectionEvent.create({
        data: { connectionId: id, integrationId: row.integrationId, type: "deleted" },
      }),
    ]);
    // The pending job would no-op on the missing row anyway; removing it frees its memory.
    await queue
      .remove(refreshJobId({ connectionId: id, version: row.version }))
      .catch((err: unknown) =>
        log.warn({ err, connection: id }, "could not remove the pending job"),
      );
    return reply.status(204).send();
  });
}
