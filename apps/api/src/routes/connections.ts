import { randomUUID } from "node:crypto";
import type { KeyRing } from "@evergreen/crypto";
import type { Connection, Integration, PrismaClient } from "@evergreen/db";
import type { Logger } from "@evergreen/observability";
import {
  computeNextRefreshAt,
  enqueueRefresh,
  type RefreshJobPayload,
  refreshJobId,
  sealAccessToken,
  sealRefreshToken,
} from "@evergreen/refresh";
import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { HttpError, parseInput } from "../http-errors";

export interface ConnectionRoutesDeps {
  readonly prisma: PrismaClient;
  readonly keyRing: KeyRing;
  readonly queue: Queue<RefreshJobPayload>;
  readonly log: Logger;
  /** REFRESH_BUFFER_SECONDS. */
  readonly defaultBufferSeconds: number;
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

const idParam = z.object({ id: z.string().uuid("must be a connection id (UUID)") });

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
   * succeeds: the row carries nextRefreshAt and the scheduler's next sweep adds the job.
   */
  app.post("/v1/connections", async (request, reply) => {
    const input = parseInput(connectionInput, request.body);
    const integration = await prisma.integration.findUnique({ where: { key: input.integration } });
    if (!integration) {
      throw new HttpError(400, "invalid_request", "integration: no integration with this key");
    }
    const now = new Date();
    const expiresAt = input.expiresAt
      ? new Date(input.expiresAt)
      : input.expiresIn
        ? new Date(now.getTime() + input.expiresIn * 1000)
        : null;
    const nextRefreshAt = input.refreshToken
      ? computeNextRefreshAt({
          expiresAt,
          issuedAt: now,
          bufferSeconds: integration.refreshBufferSeconds ?? deps.defaultBufferSeconds,
        })
      : null;
    const existing = await prisma.connection.findUnique({
      where: {
        integrationId_externalId: { integrationId: integration.id, externalId: input.externalId },
      },
    });
    const id = existing?.id ?? randomUUID();
    // Fresh tokens from the app: whatever state the grant was in (needs_reauth, error,
    // expired), it is active again and its failure history starts over.
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
    if (nextRefreshAt) {
      await enqueueRefresh(
        queue,
        { connectionId: id, version: row.version },
        nextRefreshAt,
        now,
      ).catch((err: unknown) =>
        log.error({ err, connection: id }, "scheduling failed; the sweep will add the job"),
      );
    }
    return reply.status(existing ? 200 : 201).send(connectionView(row, integration));
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
