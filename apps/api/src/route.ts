import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import { z } from "zod";
import type { RouteScope } from "./auth";
import { HttpError, noFields, parseInput } from "./http-errors";

/**
 * One route, declared once: what validates its input and what the OpenAPI document says of
 * it (openapi.ts). `registerRoute` parses the input with these schemas before the handler
 * runs, so the document cannot describe a route other than the one served.
 */
export interface RouteDeclaration<
  Params extends z.ZodType | undefined = z.ZodType | undefined,
  Query extends z.ZodType | undefined = z.ZodType | undefined,
  Body extends z.ZodType | undefined = z.ZodType | undefined,
> {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Fastify's template, `/v1/connections/:id`; the document writes `{id}`. */
  readonly url: string;
  /**
   * The scope a key needs (auth.ts), or `public` for the routes in the server's
   * PUBLIC_ROUTES: a `public` route outside that set is refused at start (checkRouteScope).
   */
  readonly scope: RouteScope | "public";
  /** The tag grouping it in the document: `integrations`, `connections`, ... */
  readonly tag: string;
  readonly summary: string;
  readonly description?: string;
  /** Path parameters. A value they refuse names no resource: 404 with `notFound`. */
  readonly params?: Params;
  /** The 404 message for an unknown or malformed path parameter. @defaultValue "no such resource" */
  readonly notFound?: string;
  /** The query string. @defaultValue none: any field is unknown (400) */
  readonly query?: Query;
  /** The JSON body of a POST, PUT, PATCH or DELETE. @defaultValue none: any field is unknown (400) */
  readonly body?: Body;
  /**
   * Every answer the route itself gives, by status: a JSON body's schema, or a description
   * (and content type) of another. The errors every route shares (400, 401, 403, 404 for a
   * route with parameters, 503 unavailable) are added by the document; list the others
   * with `errorResponse`.
   */
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  /**
   * For the OAuth callback, which answers a browser with a page rather than a JSON 400:
   * what to send when the query or body is refused. @defaultValue the 400 error answer
   */
  readonly onInvalidInput?: (request: FastifyRequest, reply: FastifyReply) => unknown;
  /**
   * Whether a GET also answers HEAD with the same handler. Off for a GET that changes
   * state (the OAuth callback consumes its state): link scanners probe with HEAD.
   * @defaultValue true
   */
  readonly head?: boolean;
}

/** One documented answer: a JSON body's schema, or a description of any other. */
export type ResponseSpec =
  | z.ZodType
  | {
      readonly description: string;
      readonly schema?: z.ZodType;
      /** @defaultValue application/json with a schema, no body without */
      readonly contentType?: string;
      /** Response headers worth documenting (`Retry-After`, `Location`), by name. */
      readonly headers?: Readonly<Record<string, string>>;
    };

/** A route's input after parsing: what its declaration's schemas output. */
export interface RouteInput<
  Params extends z.ZodType | undefined,
  Query extends z.ZodType | undefined,
  Body extends z.ZodType | undefined,
> {
  readonly params: Params extends z.ZodType ? z.output<Params> : undefined;
  readonly query: Query extends z.ZodType ? z.output<Query> : undefined;
  readonly body: Body extends z.ZodType ? z.output<Body> : undefined;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** The declaration a route was registered from (registerRoute), for checks and tests. */
    declaration?: RouteDeclaration;
  }
}

/** A route registered without a declaration: a bug, caught at start like a missing scope. */
export class UndeclaredRouteError extends Error {
  override name = "UndeclaredRouteError";
  constructor(
    readonly method: string,
    readonly url: string,
  ) {
    super(`${method} ${url} has no declaration: register it with registerRoute (route.ts)`);
  }
}

/**
 * Fail closed: run for every route as it is registered, so that no route is served that
 * its declaration's schemas do not validate and the document does not describe.
 */
export function checkRouteDeclared(route: RouteOptions): void {
  if (!route.config?.declaration) throw new UndeclaredRouteError(String(route.method), route.url);
}

/** Keeps a declaration's schema types, so that registerRoute can type the handler's input. */
export function defineRoute<
  Params extends z.ZodType | undefined = undefined,
  Query extends z.ZodType | undefined = undefined,
  Body extends z.ZodType | undefined = undefined,
>(declaration: RouteDeclaration<Params, Query, Body>): RouteDeclaration<Params, Query, Body> {
  return declaration;
}

/**
 * Registers a declared route: its scope goes where the server's key check reads it, and the
 * handler gets the parsed input. Path parameters are parsed first (a malformed id is a
 * 404, whatever else is wrong), then the query string, then the body; each failure is the
 * SPEC's 400 naming the field (parseInput).
 */
export function registerRoute<
  Params extends z.ZodType | undefined,
  Query extends z.ZodType | undefined,
  Body extends z.ZodType | undefined,
>(
  app: FastifyInstance,
  declaration: RouteDeclaration<Params, Query, Body>,
  handler: (
    input: RouteInput<Params, Query, Body>,
    request: FastifyRequest,
    reply: FastifyReply,
  ) => Promise<unknown>,
): void {
  const { method, url, scope, onInvalidInput, head = true } = declaration;
  app.route({
    method,
    url,
    exposeHeadRoute: head,
    config: {
      ...(scope === "public" ? {} : { scope }),
      declaration: declaration as RouteDeclaration,
    },
    handler: async (request, reply) => {
      let input: RouteInput<Params, Query, Body>;
      try {
        input = parseRouteInput(declaration, request);
      } catch (error) {
        if (onInvalidInput && error instanceof HttpError && error.statusCode === 400) {
          return onInvalidInput(request, reply);
        }
        throw error;
      }
      return handler(input, request, reply);
    },
  });
}

function parseRouteInput<
  Params extends z.ZodType | undefined,
  Query extends z.ZodType | undefined,
  Body extends z.ZodType | undefined,
>(
  declaration: RouteDeclaration<Params, Query, Body>,
  request: FastifyRequest,
): RouteInput<Params, Query, Body> {
  let params: unknown;
  if (declaration.params) {
    const parsed = declaration.params.safeParse(request.params);
    if (!parsed.success) {
      throw new HttpError(404, "not_found", declaration.notFound ?? "no such resource");
    }
    params = parsed.data;
  }
  const query = parseInput(declaration.query ?? noFields, request.query);
  const body =
    declaration.method === "GET"
      ? undefined
      : parseInput(declaration.body ?? noFields, request.body);
  // The casts restate what the schemas just produced: a declaration without a schema
  // yields undefined, which is what RouteInput says of it.
  return { params, query, body } as RouteInput<Params, Query, Body>;
}

/** An error answer (`{error, message}`) with the codes a route gives under this status. */
export function errorResponse(description: string, headers?: Record<string, string>): ResponseSpec {
  return { description, schema: errorBody, ...(headers ? { headers } : {}) };
}

/**
 * Schemas the document lists under `components/schemas` and refers to by name. Request
 * bodies are described as clients send them (before transforms), answers as sent.
 */
export const requestSchemas = z.registry<{ id: string }>();
export const responseSchemas = z.registry<{ id: string }>();

/** Names a request body's schema in the document. */
export function requestSchema<Schema extends z.ZodType>(
  id: string,
  schema: Schema,
  description?: string,
): Schema {
  return named(requestSchemas, id, schema, description);
}

/** Names an answer's schema in the document. */
export function responseSchema<Schema extends z.ZodType>(
  id: string,
  schema: Schema,
  description?: string,
): Schema {
  return named(responseSchemas, id, schema, description);
}

function named<Schema extends z.ZodType>(
  registry: typeof requestSchemas,
  id: string,
  schema: Schema,
  description: string | undefined,
): Schema {
  const described = description ? schema.describe(description) : schema;
  registry.add(described, { id });
  return described;
}

/** An instant as the API writes it: ISO 8601 in UTC (`Date.toISOString()`). */
export const isoTime = z.iso.datetime();

/**
 * A uuid in a path or a filter, lowercase as PostgreSQL prints uuids and as the workers name
 * locks and jobs: the same row must be found (and a connection take the same lock) whatever
 * case a client writes its id in. Both cases spelled out: a JSON Schema pattern has no flags.
 */
export const uuidInput = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/)
  .transform((id) => id.toLowerCase());

/**
 * A whole number in a query string: digits only. `z.coerce.number()` took `0x10`, `1e1` and
 * ` 5`, and read an empty `?limit=` as 0. Documented as the integer it becomes.
 */
export const queryInteger = (min: number, max: number, fallback: number) =>
  z.preprocess(
    (value) => (typeof value === "string" && /^\d{1,10}$/.test(value) ? Number(value) : value),
    // The default inside: outside the preprocess it is left out of the OpenAPI document.
    z
      .number({ error: `must be a whole number from ${min} to ${max}` })
      .int()
      .min(min)
      .max(max)
      .default(fallback),
  );

/** SPEC §3: every error answer. */
export const errorBody = responseSchema(
  "Error",
  z.strictObject({
    error: z.string().describe("a fixed code: invalid_request, not_found, needs_reauth, ..."),
    message: z.string().describe("for humans; a 400 names the field"),
  }),
  "Every error answer of the API.",
);
