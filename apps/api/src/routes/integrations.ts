import type { KeyRing } from "@evergreen/crypto";
import type { Integration, PrismaClient } from "@evergreen/db";
import type { EgressPolicy } from "@evergreen/egress";
import type { Logger } from "@evergreen/observability";
import {
  checkAuthorizationUrl,
  checkIntrospectionUrl,
  checkRevocationUrl,
  checkTokenUrl,
  type InsecureTokenUrls,
  isProviderId,
  PROVIDERS,
  ProviderConfigError,
  RESERVED_AUTHORIZATION_PARAMS,
} from "@evergreen/providers";
import {
  checkReturnUrlEntry,
  openClientSecret,
  type RefreshQueues,
  registerIntegration,
  scopesInput,
} from "@evergreen/refresh";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { auditActor } from "../auth";
import { HttpError } from "../http-errors";
import {
  defineRoute,
  errorResponse,
  isoTime,
  registerRoute,
  requestSchema,
  responseSchema,
} from "../route";

export interface IntegrationRoutesDeps {
  readonly prisma: PrismaClient;
  readonly keyRing: KeyRing;
  readonly queue: RefreshQueues;
  readonly log: Logger;
  /** ALLOW_INSECURE_TOKEN_URLS, with the development loopback allowance. */
  readonly allowInsecureTokenUrls: InsecureTokenUrls;
  /** The refreshing processes' egress policy, for what it can refuse without DNS. */
  readonly egressPolicy: EgressPolicy;
}

const integrationKey = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "must be 1-64 of a-z, 0-9, _ and -");

const integrationInput = requestSchema(
  "IntegrationInput",
  z.strictObject({
    key: integrationKey,
    provider: z.string().refine(isProviderId, "unknown provider (a catalog id or oauth2)"),
    clientId: z.string().min(1).max(512),
    clientSecret: z.string().min(1).max(4096),
    tokenUrl: z.string().url().max(2048).optional(),
    clientAuth: z.enum(["basic", "body"]).optional(),
    bodyFormat: z.enum(["form", "json"]).optional(),
    scopes: scopesInput.optional(),
    refreshBufferSeconds: z.number().int().min(1).max(86_400).optional(),
    accessTokenLifetimeSeconds: z
      .number()
      .int()
      .min(60)
      .max(31_536_000)
      .optional()
      .describe(
        "access token lifetime when the provider's answer states none, over the provider's fallback (Salesforce: the org's session timeout)",
      ),
    authorizationUrl: z.string().url().max(2048).optional(),
    revocationUrl: z
      .string()
      .url()
      .max(2048)
      .optional()
      .describe("RFC 7009 endpoint: a deleted connection's grant is revoked there"),
    authorizationParams: z
      .record(
        z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "names are 1-64 of A-Z, a-z, 0-9, _ . -"),
        z.string().max(512),
      )
      .superRefine((params, ctx) => {
        if (Object.keys(params).length > 20) {
          ctx.addIssue({ code: "custom", message: "at most 20 parameters" });
        }
        for (const name of Object.keys(params)) {
          if (RESERVED_AUTHORIZATION_PARAMS.includes(name)) {
            ctx.addIssue({
              code: "custom",
              path: [name],
              message: "set by the connect flow itself (scopes go in `scopes`)",
            });
          }
        }
      })
      .optional(),
    returnUrls: z
      .array(
        z
          .string()
          .max(2048)
          .transform((entry, ctx) => {
            const checked = checkReturnUrlEntry(entry);
            if ("normalized" in checked) return checked.normalized;
            ctx.addIssue({ code: "custom", message: checked.problem });
            return z.NEVER;
          }),
      )
      .max(20)
      .optional(),
    introspectionUrl: z
      .string()
      .url()
      .max(2048)
      .optional()
      .describe(
        "RFC 7662 endpoint; `POST /v1/connections/{id}/validate` uses it over the provider's own way",
      ),
    validateIntervalSeconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86_400)
      .optional()
      .describe("validate every active connection at the provider this often; off when absent"),
    refreshTokenRotation: z
      .enum(["rotates", "reusable"])
      .optional()
      .describe(
        "`oauth2` only: what the server does with a refresh token once it has issued a new one. `rotates`: refuses it (a lost refresh answer then stops the connection, never resending the token); `reusable`: keeps accepting it (Keycloak without refresh token revocation; a lost answer is retried). Absent: learned from the server's answers, a new refresh token in one taken as rotation.",
      ),
  }),
  "Upserted by `key`. `provider` is a catalog id or `oauth2` (then `tokenUrl` is required).",
);
type IntegrationInput = z.output<typeof integrationInput>;

const integrationFields = z.strictObject({
  key: z.string(),
  provider: z.string(),
  clientId: z.string(),
  tokenUrl: z.string().nullable(),
  clientAuth: z.enum(["basic", "body"]).nullable(),
  bodyFormat: z.enum(["form", "json"]).nullable(),
  scopes: z.array(z.string()),
  refreshBufferSeconds: z.number().int().nullable(),
  accessTokenLifetimeSeconds: z.number().int().nullable(),
  authorizationUrl: z.string().nullable(),
  revocationUrl: z.string().nullable(),
  authorizationParams: z.record(z.string(), z.string()),
  returnUrls: z.array(z.string()),
  introspectionUrl: z.string().nullable(),
  validateIntervalSeconds: z.number().int().nullable(),
  refreshTokenRotation: z.enum(["rotates", "reusable"]).nullable(),
  createdAt: isoTime,
  updatedAt: isoTime,
});

const integrationViewSchema = responseSchema(
  "Integration",
  integrationFields,
  "An integration as the API shows it: never its client secret.",
);

const integrationUpsertedSchema = responseSchema(
  "IntegrationUpserted",
  integrationFields.extend({
    warnings: z
      .array(z.string())
      .optional()
      .describe("what looks wrong but was stored anyway, such as a client id of the wrong shape"),
  }),
  "The integration as stored, with warnings when something in it looks wrong.",
);

const integrationList = responseSchema(
  "IntegrationList",
  z.strictObject({ data: z.array(integrationViewSchema) }),
);

/** What a client sees of an integration: never the client secret. */
export function integrationView(row: Integration): z.output<typeof integrationViewSchema> {
  return {
    key: row.key,
    provider: row.provider,
    clientId: row.clientId,
    tokenUrl: row.tokenUrl,
    clientAuth: row.clientAuth,
    bodyFormat: row.bodyFormat,
    scopes: row.scopes,
    refreshBufferSeconds: row.refreshBufferSeconds,
    accessTokenLifetimeSeconds: row.accessTokenLifetimeSeconds,
    authorizationUrl: row.authorizationUrl,
    revocationUrl: row.revocationUrl,
    // Only ever written from the validated string map of the input.
    authorizationParams: row.authorizationParams as Record<string, string>,
    returnUrls: row.returnUrls,
    introspectionUrl: row.introspectionUrl,
    validateIntervalSeconds: row.validateIntervalSeconds,
    // Only ever written from the validated enum of the input.
    refreshTokenRotation: row.refreshTokenRotation as "rotates" | "reusable" | null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Checks what can be checked without a network. */
function checkOffline(
  input: IntegrationInput,
  { allowInsecureTokenUrls }: IntegrationRoutesDeps,
): void {
  // The client id is stored and shown in clear: a secret pasted into both fields must not be.
  if (input.clientId === input.clientSecret) {
    throw new HttpError(
      400,
      "invalid_request",
      "clientId: the same value as clientSecret; the client id is shown in clear, so it must not be the secret",
    );
  }
  if (input.provider === "oauth2" && !input.tokenUrl) {
    throw new HttpError(400, "invalid_request", "tokenUrl: required for provider oauth2");
  }
  if (input.provider !== "oauth2" && input.refreshTokenRotation) {
    throw new HttpError(
      400,
      "invalid_request",
      `refreshTokenRotation: only for provider oauth2 (${input.provider}'s is known)`,
    );
  }
  if (input.tokenUrl) {
    try {
      // The check every refresh makes, so a URL accepted here is one the workers accept.
      checkTokenUrl(input.provider, input.tokenUrl, allowInsecureTokenUrls);
    } catch (error) {
      if (!(error instanceof ProviderConfigError)) throw error;
      throw new HttpError(400, "invalid_request", `tokenUrl: ${error.message}`);
    }
  }
  if (input.revocationUrl) {
    try {
      // The check every revocation makes: the request carries a token and the secret.
      checkRevocationUrl(input.provider, input.revocationUrl, allowInsecureTokenUrls);
    } catch (error) {
      if (!(error instanceof ProviderConfigError)) throw error;
      throw new HttpError(400, "invalid_request", `revocationUrl: ${error.message}`);
    }
  }
  if (input.authorizationUrl) {
    try {
      // The check every connect session makes. The egress policy does not apply: the
      // user's browser goes there, Evergreen does not.
      checkAuthorizationUrl(input.provider, input.authorizationUrl, allowInsecureTokenUrls);
    } catch (error) {
      if (!(error instanceof ProviderConfigError)) throw error;
      throw new HttpError(400, "invalid_request", `authorizationUrl: ${error.message}`);
    }
  }
  if (input.introspectionUrl) {
    try {
      // The check every validation makes: the request carries the client secret too.
      checkIntrospectionUrl(input.provider, input.introspectionUrl, allowInsecureTokenUrls);
    } catch (error) {
      if (!(error instanceof ProviderConfigError)) throw error;
      throw new HttpError(400, "invalid_request", `introspectionUrl: ${error.message}`);
    }
  }
}

/**
 * The URLs Evergreen itself calls (with the client secret, a token) must not lead inside:
 * a literal address, or a name that resolves to one now (`localhost`, a name in /etc/hosts),
 * is refused here rather than at each refresh. The check at every connection, after DNS,
 * stays the real guard: DNS may change.
 */
async function refuseInternalUrls(
  input: IntegrationInput,
  { egressPolicy }: IntegrationRoutesDeps,
): Promise<void> {
  const fields = ["tokenUrl", "revocationUrl", "introspectionUrl"] as const;
  const refused = await Promise.all(
    fields.map(async (field) => {
      const url = input[field];
      return url !== undefined && (await egressPolicy.refusesUrlNow(url)) ? field : null;
    }),
  );
  const field = refused.find((name) => name !== null);
  if (field) {
    throw new HttpError(
      400,
      "invalid_request",
      `${field}: the host is, or resolves to, a loopback, private or other internal address that EGRESS_ALLOWLIST does not cover`,
    );
  }
}

/**
 * A client id of another shape than the provider issues is most likely a value pasted
 * into the wrong field, but it is stored anyway: test clients, mock providers behind a
 * `tokenUrl` and ids of a shape the provider introduced later are all legitimate.
 */
function clientIdWarning(input: IntegrationInput): string | undefined {
  const definition = PROVIDERS[input.provider];
  const format = definition.clientIdFormat;
  if (!format || format.pattern.test(input.clientId)) return undefined;
  return `clientId: ${definition.displayName} client ids ${format.rule}; the provider will likely answer invalid_client`;
}

/**
 * The integration key in the path. A key of any other shape names no integration: 404,
 * like an unknown one (and a NUL byte never reaches PostgreSQL, which would refuse it).
 */
const keyParams = z.strictObject({ key: integrationKey });
const NOT_FOUND = "no integration with this key";
const notFound = () => new HttpError(404, "not_found", NOT_FOUND);

const tag = "integrations";

/** The integration routes, declared (route.ts): their validation and their documentation. */
export const integrationRoutes = {
  upsert: defineRoute({
    method: "POST",
    url: "/v1/integrations",
    scope: "admin",
    tag,
    summary: "Create or update an integration (upsert by key)",
    description:
      "Checks what can be checked without calling the provider (token URL and the other URLs), and warns of a client id of another shape than the provider issues. The client secret is stored encrypted and never returned.",
    body: integrationInput,
    responses: { 200: integrationUpsertedSchema, 201: integrationUpsertedSchema },
  }),
  list: defineRoute({
    method: "GET",
    url: "/v1/integrations",
    scope: "admin",
    tag,
    summary: "List integrations",
    responses: { 200: integrationList },
  }),
  read: defineRoute({
    method: "GET",
    url: "/v1/integrations/:key",
    scope: "admin",
    tag,
    summary: "Read an integration",
    params: keyParams,
    notFound: NOT_FOUND,
    responses: { 200: integrationViewSchema },
  }),
  remove: defineRoute({
    method: "DELETE",
    url: "/v1/integrations/:key",
    scope: "admin",
    tag,
    summary: "Delete an integration",
    description:
      "Refused (409 conflict) while the integration has connections, or while grants of its deleted connections still wait to be revoked at the provider (its credentials are needed for that; given up after 24 h).",
    params: keyParams,
    notFound: NOT_FOUND,
    responses: {
      204: { description: "Deleted." },
      409: errorResponse(
        "`conflict`: the integration still has connections, or revocations of their grants pending.",
      ),
    },
  }),
};

export function registerIntegrationRoutes(app: FastifyInstance, deps: IntegrationRoutesDeps): void {
  const { prisma } = deps;

  registerRoute(app, integrationRoutes.upsert, async ({ body }, request, reply) => {
    checkOffline(body, deps);
    await refuseInternalUrls(body, deps);
    const before = await prisma.integration.findUnique({
      where: { key: body.key },
      select: { id: true, clientSecret: true },
    });
    const { integration, created } = await registerIntegration(deps, body);
    // Only a secret that changed is a security event: most updates re-send the same one.
    if (created || !before || secretOf(before) !== body.clientSecret) {
      request.server.audit.security({
        ...auditActor(request),
        event: "integration_secret_changed",
        integration: integration.key,
        created,
      });
    }
    const warning = clientIdWarning(body);
    if (warning) request.log.warn({ integration: integration.key }, warning);
    return reply
      .status(created ? 201 : 200)
      .send({ ...integrationView(integration), ...(warning && { warnings: [warning] }) });
  });

  /** The stored secret, or undefined when no key of the ring opens it (then it changed). */
  function secretOf(row: { id: string; clientSecret: string }): string | undefined {
    try {
      return openClientSecret(deps.keyRing, row.id, row.clientSecret);
    } catch {
      return undefined;
    }
  }

  registerRoute(app, integrationRoutes.list, async () => {
    const rows = await prisma.integration.findMany({ orderBy: { key: "asc" } });
    return { data: rows.map(integrationView) };
  });

  registerRoute(app, integrationRoutes.read, async ({ params }) => {
    const row = await prisma.integration.findUnique({ where: { key: params.key } });
    if (!row) throw notFound();
    return integrationView(row);
  });

  registerRoute(app, integrationRoutes.remove, async ({ params }, _request, reply) => {
    const row = await prisma.integration.findUnique({
      where: { key: params.key },
      include: { _count: { select: { connections: true } } },
    });
    if (!row) throw notFound();
    if (row._count.connections > 0) throw stillHasConnections();
    // Revoking a deleted connection's grant takes the integration's client credentials:
    // deleted now, every pending revocation would fail and leave its grant alive.
    const pending = await prisma.pendingRevocation.count({ where: { integrationId: row.id } });
    if (pending > 0) {
      throw new HttpError(
        409,
        "conflict",
        `grant revocations of deleted connections still pending at the provider: ${pending}; retry once they are done (24 h at most)`,
      );
    }
    // A concurrent delete may have gone first (then 404, as for any unknown key), and a
    // connection registered since the count holds the row (the foreign key refuses: 409).
    const deleted = await prisma.integration
      .deleteMany({ where: { id: row.id } })
      .catch((error) => {
        if ((error as { code?: unknown }).code === "P2003") throw stillHasConnections();
        throw error;
      });
    if (deleted.count === 0) throw notFound();
    return reply.status(204).send();
  });
}

const stillHasConnections = () =>
  new HttpError(409, "conflict", "the integration still has connections; delete them first");
