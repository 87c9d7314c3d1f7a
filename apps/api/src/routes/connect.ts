import type { PrismaClient } from "@evergreen/db";
import { ProviderConfigError } from "@evergreen/providers";
import {
  CodeExchangeError,
  completeConnectSession,
  createConnectSession,
  type ExchangeDeps,
  exchangeCode,
  metadataInput,
  type RefreshDeps,
  ReturnUrlNotAllowedError,
  scopesInput,
  UnknownIntegrationError,
} from "@evergreen/refresh";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { auditExchange } from "../audit-lines";
import { auditActor } from "../auth";
import { HttpError } from "../http-errors";
import {
  defineRoute,
  errorBody,
  errorResponse,
  isoTime,
  registerRoute,
  requestSchema,
  responseSchema,
} from "../route";
import { connectionView, connectionViewSchema } from "./connections";

export interface ConnectRoutesDeps {
  readonly prisma: PrismaClient;
  /** The refresh path's parts: key ring, egress client, queue, log, settings. */
  readonly refresh: RefreshDeps;
  /** PUBLIC_URL: the callback, registered with providers, is `${publicUrl}/oauth/callback`. */
  readonly publicUrl: string;
}

/** The public route a provider sends users' browsers back to (no API key). */
export const CALLBACK_PATH = "/oauth/callback";

const integration = z.string().min(1).max(64);
const externalId = z.string().min(1).max(256);

const sessionInput = requestSchema(
  "ConnectSessionInput",
  z.strictObject({
    integration,
    externalId,
    returnUrl: z.string().min(1).max(2048),
    scopes: scopesInput.optional(),
    metadata: metadataInput.optional(),
  }),
  "`returnUrl` must be admitted by the integration's `returnUrls`; `scopes` replace the integration's for this authorization; `metadata` becomes the connection's.",
);

const connectSession = responseSchema(
  "ConnectSession",
  z.strictObject({
    url: z.string().describe("the provider's authorization URL: send the user's browser there"),
    expiresAt: isoTime.describe("10 minutes from now; the URL works once"),
  }),
);

const exchangeInput = requestSchema(
  "CodeExchangeInput",
  z.strictObject({
    integration,
    externalId,
    code: z.string().min(1).max(4096),
    redirectUri: z.string().url().max(2048),
    codeVerifier: z
      .string()
      .regex(/^[A-Za-z0-9._~-]{43,128}$/, "43-128 characters of A-Z, a-z, 0-9, . _ ~ - (RFC 7636)")
      .optional(),
    metadata: metadataInput.optional(),
  }),
  "An authorization code the app received at its own redirect URI.",
);

/**
 * Not strict: providers add their own parameters to the callback (Google's `scope`,
 * `authuser`, `prompt`; Microsoft's `session_state`; RFC 9207's `iss`). A state sent twice
 * arrives as an array and fails, like a missing one: no session, no return URL to trust.
 * Once the state names a session, a malformed code (sent twice, too long) or error still
 * sends the user back to the app: as a missing code (`invalid_request`), as an error no
 * RFC defines (`provider_error`).
 */
const callbackQuery = z.object({
  state: z.string().min(1).max(512),
  code: z.preprocess((value) => malformedAs(value, 4096, ""), z.string().max(4096).optional()),
  error: z.preprocess(
    (value) => malformedAs(value, 256, "malformed"),
    z.string().max(256).optional(),
  ),
});

/** A query value that is no string of at most `maxChars` (sent twice, too long) as `instead`. */
function malformedAs(value: unknown, maxChars: number, instead: string): unknown {
  if (value === undefined) return undefined;
  return typeof value === "string" && value.length <= maxChars ? value : instead;
}

/** The errors both routes share, as SPEC §3 answers them. */
function httpError(error: unknown): unknown {
  if (error instanceof UnknownIntegrationError) {
    return new HttpError(400, "invalid_request", `integration: ${error.message}`);
  }
  if (error instanceof ProviderConfigError) {
    // Metadata fills URL placeholders (a tenant, a region): a bad value is the caller's.
    if (error.problem === "invalid_placeholder") {
      return new HttpError(400, "invalid_request", `metadata: ${error.message}`);
    }
    return new HttpError(409, "integration_error", error.message);
  }
  if (error instanceof CodeExchangeError) {
    switch (error.code) {
      case "invalid_grant":
        return new HttpError(
          400,
          "invalid_grant",
          "the provider refused the code (expired, used, or issued for another redirectUri or codeVerifier)",
        );
      case "integration_error":
        return new HttpError(409, "integration_error", "the provider refused the client");
      case "exchange_failed":
        return new HttpError(503, "exchange_failed", error.message);
      default: {
        const unreachable: never = error.code;
        return unreachable;
      }
    }
  }
  return error;
}

const rethrow = (error: unknown): never => {
  throw httpError(error);
};

const tag = "connect";

/** The connect flow's routes, declared (route.ts): their validation and their documentation. */
export const connectRoutes = {
  session: defineRoute({
    method: "POST",
    url: "/v1/connect-sessions",
    scope: "connections:write",
    tag,
    summary: "Start a connect session: an authorization URL for one user",
    description:
      "The state is single-use, expires in 10 minutes and is kept server-side; PKCE S256 for every provider that accepts it.",
    body: sessionInput,
    responses: {
      201: connectSession,
      409: errorResponse("`integration_error`: the integration's URLs cannot be used."),
    },
  }),
  callback: defineRoute({
    method: "GET",
    url: CALLBACK_PATH,
    scope: "public",
    tag,
    summary: "The OAuth redirect URI (public: the provider sends users' browsers here)",
    description:
      "Exchanges the code, stores the connection, and redirects to the session's `returnUrl` with `connectionId` and `status=success`, or `error=<code>`. Never puts a token in a URL. Values a provider adds to the callback that its apps need (Intuit `realmId`, Zoho `location`, Shopify `shop`) are kept in the connection's metadata and returned as the token's `extra`.",
    query: callbackQuery,
    onInvalidInput: sendInvalidState,
    head: false,
    responses: {
      303: {
        description: "To the session's returnUrl, with `connectionId` and `status`, or `error`.",
        headers: { location: "the return URL" },
      },
      400: {
        description:
          "`invalid_state`: the state names no session (forged, used, or long expired), or the integration's `returnUrls` no longer admit the session's return URL: a page for a browser asking for HTML, else the JSON error.",
        schema: errorBody,
      },
    },
  }),
  exchange: defineRoute({
    method: "POST",
    url: "/v1/connections/exchange",
    scope: "connections:write",
    tag,
    summary: "Exchange an authorization code the app received itself",
    body: exchangeInput,
    responses: {
      200: connectionViewSchema,
      201: connectionViewSchema,
      400: errorResponse(
        "`invalid_request` (a field, an unknown integration) or `invalid_grant`: the provider refused the code (expired, used, or issued for another redirectUri or codeVerifier).",
      ),
      409: errorResponse("`integration_error`: the provider refused the client."),
      503: errorResponse(
        "`exchange_failed`: the provider failed, rate-limited or was unreachable.",
      ),
    },
  }),
};

export function registerConnectRoutes(app: FastifyInstance, deps: ConnectRoutesDeps): void {
  const exchange: ExchangeDeps = { ...deps.refresh, prisma: deps.prisma };
  const redirectUri = `${deps.publicUrl}${CALLBACK_PATH}`;

  registerRoute(app, connectRoutes.session, async ({ body }, _request, reply) => {
    const session = await createConnectSession(exchange, { ...body, redirectUri }).catch(
      (error: unknown) => {
        if (error instanceof ReturnUrlNotAllowedError) {
          throw new HttpError(400, "invalid_request", `returnUrl: ${error.message}`);
        }
        return rethrow(error);
      },
    );
    return reply.status(201).send({ url: session.url, expiresAt: session.expiresAt.toISOString() });
  });

  registerRoute(app, connectRoutes.callback, async ({ query }, request, reply) => {
    keepPrivate(reply);
    // The raw query too: providers add the values their apps need (Intuit's realmId, Zoho's
    // location), which the provider's definition names; nothing else of it is kept.
    const params: Record<string, unknown> =
      request.query && typeof request.query === "object" ? { ...request.query } : {};
    const outcome = await completeConnectSession(exchange, { ...query, params });
    auditExchange(request, {
      // Public: no API key. The session's state, single-use, is the credential.
      keyName: "oauth_callback",
      ip: request.ip,
      route: CALLBACK_PATH,
      connectionId: outcome.kind === "redirect" ? outcome.connectionId : undefined,
      outcome: outcome.kind === "redirect" ? outcome.result : outcome.kind,
    });
    if (outcome.kind === "unknown_state") return sendInvalidState(request, reply);
    if (outcome.kind === "return_url_withdrawn") {
      return sendInvalidState(
        request,
        reply,
        "This sign-in link leads back to an address the app no longer allows. Go back to the app and connect again.",
      );
    }
    return reply.redirect(outcome.location, 303);
  });

  registerRoute(app, connectRoutes.exchange, async ({ body }, request, reply) => {
    const audit = (outcome: string, connectionId?: string) =>
      auditExchange(request, {
        ...auditActor(request),
        route: connectRoutes.exchange.url,
        connectionId,
        outcome,
      });
    const { connection, integration, created } = await exchangeCode(exchange, body).catch(
      (error: unknown) => {
        const answer = httpError(error);
        audit(answer instanceof HttpError ? answer.code : "error");
        throw answer;
      },
    );
    audit("exchanged", connection.id);
    return reply.status(created ? 201 : 200).send(connectionView(connection, integration));
  });
}

/**
 * A callback whose state names no session (forged, mistyped, or long expired), or whose
 * return URL the integration no longer allows: with no return URL that can be trusted, the
 * user gets a page here, never a redirect.
 */
function sendInvalidState(
  request: FastifyRequest,
  reply: FastifyReply,
  message = "This sign-in link is invalid, expired or was already used. Go back to the app and connect again.",
) {
  keepPrivate(reply);
  reply.status(400);
  if (request.headers.accept?.includes("text/html")) {
    return reply
      .type("text/html; charset=utf-8")
      .send(`<!doctype html><title>Connection failed</title><p>${message}</p>`);
  }
  return reply.send({ error: "invalid_state", message });
}

/** Whatever happens at the callback, the page that held the code is neither cached nor sent as a referrer. */
function keepPrivate(reply: FastifyReply): void {
  reply.header("cache-control", "no-store").header("referrer-policy", "no-referrer");
}
