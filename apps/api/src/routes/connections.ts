import type { Connection, Integration, PrismaClient } from "@evergreen/db";
import {
  expiresInInput,
  MAX_EXTERNAL_ID_CHARS,
  MAX_SCOPE_CHARS,
  MAX_TOKEN_CHARS,
  metadataInput,
  planRevocation,
  type RefreshDeps,
  type RegistrationDeps,
  type RevocationJobPayload,
  refreshJobId,
  registerConnection,
  revocationJob,
  UnknownIntegrationError,
  ValidationFailedError,
  ValidationUnsupportedError,
  validateConnection,
} from "@evergreen/refresh";
import { recordWebhookEvent } from "@evergreen/webhooks";
import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { auditActor, type RouteScope } from "../auth";
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
import { type AccessToken, accessTokenSchema, type TokenService } from "../token-service";

export interface ConnectionRoutesDeps {
  readonly prisma: PrismaClient;
  /** The refresh path's parts: key ring, queue, parked answers, log, settings. */
  readonly refresh: RefreshDeps;
  readonly tokens: TokenService;
  /** Where a delete queues the revocation of the grant at the provider. */
  readonly revocations: Queue<RevocationJobPayload>;
}

const connectionInput = requestSchema(
  "ConnectionInput",
  z
    .strictObject({
      integration: z.string().min(1).max(64),
      externalId: z.string().min(1).max(MAX_EXTERNAL_ID_CHARS),
      accessToken: z.string().min(1).max(MAX_TOKEN_CHARS),
      refreshToken: z.string().min(1).max(MAX_TOKEN_CHARS).optional(),
      expiresIn: expiresInInput.optional(),
      expiresAt: z.iso
        .datetime({ offset: true })
        .transform((value) => new Date(value))
        .optional(),
      scope: z.string().max(MAX_SCOPE_CHARS).optional(),
      tokenType: z.string().min(1).max(64).optional(),
      metadata: metadataInput.optional(),
    })
    .refine((input) => input.expiresIn === undefined || input.expiresAt === undefined, {
      message: "give expiresIn or expiresAt, not both",
      path: ["expiresAt"],
    }),
  "Upserted by `(integration, externalId)`. Without `refreshToken` a stored one is kept; give `expiresIn` or `expiresAt`, not both.",
);

/** The connection id in the path. An id of any other shape names no connection: 404. */
const idParams = z.strictObject({ id: uuidInput });
const NOT_FOUND = "no connection with this id";
const notFound = () => new HttpError(404, "not_found", NOT_FOUND);

const tokenQuery = z.strictObject({
  // Up to a day: asking for more than a token's lifetime would refresh on every call, but
  // the token service asks at most half the lifetime of a refreshed token (TokenService).
  // Refused above 1800 s before that rule existed; an app asking for an hour from a provider
  // of hour-long tokens got a 400 instead of a fresh token.
  minValidity: queryInteger(0, 86_400, 60),
});

const removeQuery = z.strictObject({
  revoke: z
    .enum(["true", "false"])
    .default("true")
    .transform((value) => value === "true")
    .describe("`false`: erase locally only, leaving the grant alive at the provider"),
});

const listQuery = z.strictObject({
  integration: z.string().min(1).max(64).optional(),
  externalId: z.string().min(1).max(256).optional(),
  status: z.enum(["active", "expired", "needs_reauth", "error"]).optional(),
  limit: queryInteger(1, 200, 50),
  cursor: z
    .string()
    .transform((value, ctx) => {
      const id = decodeConnectionCursor(value);
      if (id) return id;
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

export const connectionViewSchema = responseSchema(
  "Connection",
  z.strictObject({
    id: z.string(),
    integration: z.string(),
    externalId: z.string(),
    status: z.enum(["active", "expired", "needs_reauth", "error"]),
    expiresAt: isoTime.nullable().describe("null when the access token does not expire"),
    refreshTokenExpiresAt: isoTime
      .optional()
      .describe("when the refresh token dies, where the provider states it"),
    nextRefreshAt: isoTime.nullable(),
    lastRefreshedAt: isoTime.nullable(),
    refreshCount: z.number().int(),
    lastError: z
      .strictObject({ code: z.string(), message: z.string().nullable(), at: isoTime })
      .nullable(),
    metadata: z.record(z.string(), z.unknown()),
    createdAt: isoTime,
    updatedAt: isoTime,
  }),
  "A connection as the API shows it: never a token.",
);

const connectionPage = responseSchema(
  "ConnectionPage",
  z.strictObject({
    data: z.array(connectionViewSchema),
    nextCursor: z.string().nullable().describe("pass back as `cursor` for the next page"),
  }),
);

/** Refusals of a token or a refresh (SPEC §3). */
const TOKEN_ERRORS = {
  409: errorResponse(
    "`needs_reauth`: the provider refused the grant, or an answer that may have rotated the refresh token was lost (`lastError.code` `in_doubt`); send the user through OAuth again. `integration_error`: the integration's client configuration was refused; nothing is retried until it is updated.",
  ),
  503: errorResponse(
    "`refresh_failed`: a refresh failed transiently and the stored token has expired; retry after `Retry-After` seconds. `unavailable`: a backing service is unreachable or the process is stopping.",
    { "retry-after": "seconds to wait before retrying" },
  ),
};

const validationSchema = responseSchema(
  "Validation",
  z.strictObject({
    valid: z.boolean(),
    scope: z.string().optional().describe("what the provider says the token may do, where it says"),
    expiresAt: isoTime
      .optional()
      .describe("when the provider says the token expires, else the stored expiry"),
    checkedAt: isoTime,
  }),
  "The provider's verdict on the stored access token.",
);

const tag = "connections";

/** The connection routes, declared (route.ts): their validation and their documentation. */
export const connectionRoutes = {
  upsert: defineRoute({
    method: "POST",
    url: "/v1/connections",
    scope: "connections:write",
    tag,
    summary: "Register a connection's tokens (upsert by integration and externalId)",
    description:
      "Re-sending tokens for a `needs_reauth` connection makes it `active` again. An unknown integration is a 400 naming `integration`.",
    body: connectionInput,
    responses: { 200: connectionViewSchema, 201: connectionViewSchema },
  }),
  list: defineRoute({
    method: "GET",
    url: "/v1/connections",
    scope: VIEWS,
    tag,
    summary: "List connections, keyset paged",
    query: listQuery,
    responses: { 200: connectionPage },
  }),
  token: defineRoute({
    method: "GET",
    url: "/v1/connections/:id/token",
    scope: "tokens:read",
    // A HEAD must be safe (RFC 9110 §9.2.1); this GET may refresh, rotate and audit.
    head: false,
    tag,
    summary: "A valid access token, refreshed first when needed",
    description:
      "Refreshes first when the stored token is valid for less than `minValidity` seconds (one refresh per connection however many callers ask). When that refresh fails transiently or waits out a rate limit, a still-valid old token is returned instead of the 503; an expired token never is. A connection without a refresh token has its token returned while it is valid, and is not changed by the read. `needs_reauth` and `integration_error` are answered whatever the token's validity.",
    params: idParams,
    notFound: NOT_FOUND,
    query: tokenQuery,
    responses: { 200: accessTokenSchema, ...TOKEN_ERRORS },
  }),
  refresh: defineRoute({
    method: "POST",
    url: "/v1/connections/:id/refresh",
    scope: "connections:write",
    tag,
    summary: "Refresh now (joins a refresh in flight)",
    params: idParams,
    notFound: NOT_FOUND,
    responses: { 200: connectionViewSchema, ...TOKEN_ERRORS },
  }),
  validate: defineRoute({
    method: "POST",
    url: "/v1/connections/:id/validate",
    scope: "connections:write",
    tag,
    summary: "Ask the provider whether the access token is alive",
    description:
      "Token info, RFC 7662 introspection (the integration's `introspectionUrl`) or a cheap identity call, per provider. A token the provider calls invalid before its stored expiry means the grant was revoked: an `active` connection becomes `needs_reauth` (event and `connection.needs_reauth` webhook). A token past its stored expiry is answered `valid: false` without asking the provider and without a status change: renewing it is the refresh's job, which finds out whether the grant lives.",
    params: idParams,
    notFound: NOT_FOUND,
    responses: {
      200: validationSchema,
      409: errorResponse(
        "`validation_unsupported`: neither the provider nor the integration (`introspectionUrl`) offers a way to check a token.",
      ),
      503: errorResponse(
        "`validation_failed`: the provider gave no verdict (unreachable, an error status, an answer of no known shape); retry after `Retry-After` seconds. `unavailable`: a backing service is unreachable.",
        { "retry-after": "seconds to wait before retrying" },
      ),
    },
  }),
  read: defineRoute({
    method: "GET",
    url: "/v1/connections/:id",
    scope: VIEWS,
    tag,
    summary: "Read a connection",
    params: idParams,
    notFound: NOT_FOUND,
    responses: { 200: connectionViewSchema },
  }),
  remove: defineRoute({
    method: "DELETE",
    url: "/v1/connections/:id",
    scope: "connections:write",
    tag,
    summary: "Delete a connection and erase its tokens",
    description:
      "Where the provider can revoke a grant (RFC 7009 or its own endpoint), the revocation is queued and retried in the background: the answer never waits on the provider. The outcome is a `revoked` or `revocation_failed` connection event.",
    params: idParams,
    notFound: NOT_FOUND,
    query: removeQuery,
    responses: {
      204: {
        description: "Deleted: tokens erased, pending refresh removed, revocation queued.",
      },
    },
  }),
};

/** What a client sees of a connection: never a token. */
export function connectionView(
  row: Connection,
  integration: Pick<Integration, "key">,
): z.output<typeof connectionViewSchema> {
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
    // Only ever written from the validated object of the input (metadataInput).
    metadata: row.metadata as Record<string, unknown>,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function registerConnectionRoutes(app: FastifyInstance, deps: ConnectionRoutesDeps): void {
  const { prisma, refresh } = deps;
  const registration: RegistrationDeps = { ...refresh, prisma };

  registerRoute(app, connectionRoutes.upsert, async ({ body }, _request, reply) => {
    const { connection, integration, created } = await registerConnection(registration, body).catch(
      (error: unknown) => {
        if (!(error instanceof UnknownIntegrationError)) throw error;
        throw new HttpError(400, "invalid_request", `integration: ${error.message}`);
      },
    );
    return reply.status(created ? 201 : 200).send(connectionView(connection, integration));
  });

  registerRoute(app, connectionRoutes.list, async ({ query }) => {
    const { rows, nextCursor } = await listConnections(prisma, query);
    return { data: rows.map((row) => connectionView(row, row.integration)), nextCursor };
  });

  registerRoute(app, connectionRoutes.token, async ({ params, query }, request, reply) => {
    const token: AccessToken = await deps.tokens.token(params.id, query.minValidity, (outcome) =>
      request.server.audit.tokenRead({
        ...auditActor(request),
        route: connectionRoutes.token.url,
        connectionId: params.id,
        outcome,
      }),
    );
    return reply.send(token);
  });

  registerRoute(app, connectionRoutes.refresh, async ({ params }) => {
    const row = await deps.tokens.refresh(params.id);
    return connectionView(row, row.integration);
  });

  registerRoute(app, connectionRoutes.validate, async ({ params }) => {
    const result = await validateConnection({ ...refresh, prisma }, params.id).catch(
      (error: unknown) => {
        if (error instanceof ValidationUnsupportedError) {
          throw new HttpError(409, "validation_unsupported", error.message);
        }
        if (error instanceof ValidationFailedError) {
          throw new HttpError(503, "validation_failed", error.message, { retryAfterSeconds: 30 });
        }
        throw error;
      },
    );
    if (!result) throw notFound();
    return {
      valid: result.valid,
      ...(result.scope !== undefined ? { scope: result.scope } : {}),
      ...(result.expiresAt ? { expiresAt: result.expiresAt.toISOString() } : {}),
      checkedAt: result.checkedAt.toISOString(),
    };
  });

  registerRoute(app, connectionRoutes.read, async ({ params }) => {
    const row = await prisma.connection.findUnique({
      where: { id: params.id },
      include: { integration: true },
    });
    if (!row) throw notFound();
    return connectionView(row, row.integration);
  });

  registerRoute(app, connectionRoutes.remove, async ({ params, query }, _request, reply) => {
    if (!(await deleteConnection(deps, params.id, { revoke: query.revoke }))) throw notFound();
    return reply.status(204).send();
  });
}

/** What a connection list may be filtered by (GET /v1/connections, the admin console). */
export type ConnectionFilter = Omit<z.output<typeof listQuery>, "cursor"> & {
  /** The last id of the previous page, decoded. */
  readonly cursor?: string | undefined;
};

/** Keyset pages in id order: stable under inserts, no OFFSET scans. */
export async function listConnections(prisma: PrismaClient, query: ConnectionFilter) {
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
    rows: page,
    nextCursor: rows.length > query.limit && last ? encodeCursor(last.id) : null,
  };
}

/** Decodes a cursor listConnections returned; undefined when it is not one. */
export function decodeConnectionCursor(value: string): string | undefined {
  const id = Buffer.from(value, "base64url").toString("utf8");
  return z.string().uuid().safeParse(id).success ? id : undefined;
}

/**
 * SPEC §2: a deleted connection is gone, tokens included. A provider's answer parked in
 * Redis (sealed tokens, kept up to a week) goes first: if Redis cannot drop it, the
 * request fails (503) with nothing deleted, and the client's retry finishes the job.
 * Returns false when no such connection exists.
 */
export async function deleteConnection(
  deps: Pick<ConnectionRoutesDeps, "prisma" | "refresh" | "revocations">,
  id: string,
  options: { readonly revoke: boolean },
): Promise<boolean> {
  const { prisma, refresh } = deps;
  const row = await prisma.connection.findUnique({
    where: { id },
    include: { integration: true },
  });
  if (!row) return false;
  await refresh.parked.drop(id);
  // The token to revoke is copied sealed into a row of the same transaction: the grant
  // is revoked even if the process dies right after the commit (before the enqueue).
  const deleted = await prisma.$transaction(async (tx) => {
    // The tokens as they are when deleted: a refresh may have rotated them since the read
    // above, and revoking the old ones would leave the live grant alive. Nothing deleted:
    // a concurrent delete of the same connection went first.
    const [gone] = await tx.$queryRaw<Pick<Connection, "id" | "accessToken" | "refreshToken">[]>`
      DELETE FROM connections WHERE id = ${id}::uuid
      RETURNING id::text, "accessToken", "refreshToken"`;
    if (!gone) return null;
    const pending = options.revoke
      ? await planRevocation(tx, gone, row.integration, new Date())
      : null;
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
    return { revocationId: pending };
  });
  if (!deleted) return false;
  const { revocationId } = deleted;
  if (revocationId !== null) {
    const { name, data, opts } = revocationJob({ revocationId, attempt: 0 }, 0);
    await deps.revocations
      .add(name, data, opts)
      .catch((err: unknown) =>
        refresh.log.warn({ err, connection: id }, "could not queue the grant's revocation"),
      );
  }
  // The pending job would no-op on the missing row anyway; removing it frees its memory.
  await refresh.queue
    .remove(refreshJobId({ connectionId: id, version: row.version }))
    .catch((err: unknown) =>
      refresh.log.warn({ err, connection: id }, "could not remove the pending job"),
    );
  return true;
}
