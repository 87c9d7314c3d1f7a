import { randomUUID } from "node:crypto";
import type { KeyRing } from "@evergreen/crypto";
import type { Integration, PrismaClient } from "@evergreen/db";
import type { EgressPolicy } from "@evergreen/egress";
import type { Logger } from "@evergreen/observability";
import {
  checkTokenUrl,
  type InsecureTokenUrls,
  isProviderId,
  ProviderConfigError,
} from "@evergreen/providers";
import { type RefreshJobPayload, refreshJob, sealClientSecret } from "@evergreen/refresh";
import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { HttpError, parseInput } from "../http-errors";
import { scheduleOrDefer } from "../schedule-or-defer";

export interface IntegrationRoutesDeps {
  readonly prisma: PrismaClient;
  readonly keyRing: KeyRing;
  readonly queue: Queue<RefreshJobPayload>;
  readonly log: Logger;
  /** ALLOW_INSECURE_TOKEN_URLS, with the development loopback allowance. */
  readonly allowInsecureTokenUrls: InsecureTokenUrls;
  /** The refreshing processes' egress policy, for what it can refuse without DNS. */
  readonly egressPolicy: EgressPolicy;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const integrationKey = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "must be 1-64 of a-z, 0-9, _ and -");

const integrationInput = z.object({
  key: integrationKey,
  provider: z.string().refine(isProviderId, "unknown provider (a catalog id or oauth2)"),
  clientId: z.string().min(1).max(512),
  clientSecret: z.string().min(1).max(4096),
  tokenUrl: z.string().url().max(2048).optional(),
  clientAuth: z.enum(["basic", "body"]).optional(),
  bodyFormat: z.enum(["form", "json"]).optional(),
  scopes: z.array(z.string().min(1).max(256)).max(100).optional(),
  refreshBufferSeconds: z.number().int().min(1).max(86_400).optional(),
});
type IntegrationInput = z.output<typeof integrationInput>;

/** What a client sees of an integration: never the client secret. */
export function integrationView(row: Integration) {
  return {
    key: row.key,
    provider: row.provider,
    clientId: row.clientId,
    tokenUrl: row.tokenUrl,
    clientAuth: row.clientAuth,
    bodyFormat: row.bodyFormat,
    scopes: row.scopes,
    refreshBufferSeconds: row.refreshBufferSeconds,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Checks what can be checked without calling the provider. */
function checkOffline(
  input: IntegrationInput,
  { allowInsecureTokenUrls, egressPolicy }: IntegrationRoutesDeps,
): void {
  if (input.provider === "oauth2" && !input.tokenUrl) {
    throw new HttpError(400, "invalid_request", "tokenUrl: required for provider oauth2");
  }
  if (input.tokenUrl) {
    try {
      // The check every refresh makes, so a URL accepted here is one the workers accept.
      checkTokenUrl(input.provider, input.tokenUrl, allowInsecureTokenUrls);
    } catch (error) {
      if (!(error instanceof ProviderConfigError)) throw error;
      throw new HttpError(400, "invalid_request", `tokenUrl: ${error.message}`);
    }
    // Only literal addresses can be refused here; a name is checked on every connection,
    // after DNS, which stays the real guard.
    if (egressPolicy.refusesUrl(input.tokenUrl)) {
      throw new HttpError(
        400,
        "invalid_request",
        "tokenUrl: the host is a loopback, private or other internal address that EGRESS_ALLOWLIST does not cover",
      );
    }
  }
  if (input.provider === "google" && !input.clientId.endsWith(".apps.googleusercontent.com")) {
    throw new HttpError(
      400,
      "invalid_request",
      "clientId: Google client ids end in .apps.googleusercontent.com",
    );
  }
  if (input.provider === "microsoft" && !UUID.test(input.clientId)) {
    throw new HttpError(400, "invalid_request", "clientId: Microsoft client ids are UUIDs");
  }
}

/**
 * Connections in `error` stopped because the provider refused this integration's
 * configuration (SPEC §2); an update may have fixed it, so they are refreshed now. A job
 * that cannot be queued is added by the scheduler's next sweep (the row is due).
 */
async function retryFailedConnections(
  { prisma, queue, log }: IntegrationRoutesDeps,
  integration: Integration,
): Promise<void> {
  const now = new Date();
  const rows = await prisma.$transaction(async (tx) => {
    const updated = await tx.connection.updateManyAndReturn({
      where: { integrationId: integration.id, status: "error" },
      data: {
        status: "active",
        nextRefreshAt: now,
        consecutiveFailures: 0,
        version: { increment: 1 },
      },
      select: { id: true, version: true },
    });
    await tx.connectionEvent.createMany({
      data: updated.map((row) => ({
        connectionId: row.id,
        integrationId: integration.id,
        type: "updated" as const,
        message: "integration updated: refresh retried",
      })),
    });
    return updated;
  });
  if (rows.length === 0) return;
  await scheduleOrDefer(
    log,
    { integration: integration.key },
    queue.addBulk(
      rows.map((row) => refreshJob({ connectionId: row.id, version: row.version }, now, now)),
    ),
  );
  log.info(
    { integration: integration.key, connections: rows.length },
    "retrying connections in error",
  );
}

export function registerIntegrationRoutes(app: FastifyInstance, deps: IntegrationRoutesDeps): void {
  const { prisma, keyRing } = deps;

  app.post("/v1/integrations", async (request, reply) => {
    const input = parseInput(integrationInput, request.body);
    checkOffline(input, deps);
    const existing = await prisma.integration.findUnique({ where: { key: input.key } });
    const id = existing?.id ?? randomUUID();
    const fields = {
      provider: input.provider,
      clientId: input.clientId,
      clientSecret: sealClientSecret(keyRing, id, input.clientSecret),
      tokenUrl: input.tokenUrl ?? null,
      clientAuth: input.clientAuth ?? null,
      bodyFormat: input.bodyFormat ?? null,
      scopes: input.scopes ?? [],
      refreshBufferSeconds: input.refreshBufferSeconds ?? null,
    };
    const row = await prisma.integration.upsert({
      where: { key: input.key },
      create: { id, key: input.key, ...fields },
      update: fields,
    });
    if (existing) await retryFailedConnections(deps, row);
    return reply.status(existing ? 200 : 201).send(integrationView(row));
  });

  app.get("/v1/integrations", async () => {
    const rows = await prisma.integration.findMany({ orderBy: { key: "asc" } });
    return { data: rows.map(integrationView) };
  });

  app.get<{ Params: { key: string } }>("/v1/integrations/:key", async (request) => {
    const row = await prisma.integration.findUnique({ where: { key: request.params.key } });
    if (!row) throw new HttpError(404, "not_found", "no integration with this key");
    return integrationView(row);
  });

  app.delete<{ Params: { key: string } }>("/v1/integrations/:key", async (request, reply) => {
    const row = await prisma.integration.findUnique({
      where: { key: request.params.key },
      include: { _count: { select: { connections: true } } },
    });
    if (!row) throw new HttpError(404, "not_found", "no integration with this key");
    if (row._count.connections > 0) {
      throw new HttpError(
        409,
        "conflict",
        "the integration still has connections; delete them first",
      );
    }
    await prisma.integration.delete({ where: { id: row.id } });
    return reply.status(204).send();
  });
}
