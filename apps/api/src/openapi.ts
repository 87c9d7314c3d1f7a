import { z } from "zod";
import rootPackage from "../../../package.json" with { type: "json" };
import {
  errorBody,
  type ResponseSpec,
  type RouteDeclaration,
  requestSchemas,
  responseSchemas,
} from "./route";
import { connectRoutes } from "./routes/connect";
import { connectionRoutes } from "./routes/connections";
import { eventRoutes } from "./routes/events";
import { integrationRoutes } from "./routes/integrations";
import { opsRoutes } from "./routes/ops";
import { webhookRoutes } from "./routes/webhooks";

/**
 * Every route the api serves, by group: the document's source. A route module adds its
 * declarations here; a test checks that a server with every group registered serves
 * exactly these routes, and a route registered without a declaration stops the server
 * from being built (server.ts).
 */
export const API_ROUTES = {
  integrations: integrationRoutes,
  connections: connectionRoutes,
  connect: connectRoutes,
  webhooks: webhookRoutes,
  events: eventRoutes,
  ops: opsRoutes,
} satisfies Record<string, Record<string, RouteDeclaration>>;

type JsonSchema = Record<string, unknown>;

export interface OpenApiDocument {
  readonly openapi: "3.1.0";
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly paths: Record<string, Record<string, Operation>>;
  readonly components: {
    readonly schemas: Record<string, JsonSchema>;
    readonly securitySchemes: Record<string, JsonSchema>;
  };
  readonly security: readonly Record<string, readonly string[]>[];
  readonly tags: readonly { readonly name: string }[];
}

export interface Operation {
  readonly operationId: string;
  readonly tags: readonly string[];
  readonly summary: string;
  readonly description?: string;
  /** The scope a key needs: one, or any one of several (`admin` passes every route). */
  readonly "x-required-scope"?: string | readonly string[];
  readonly security: readonly Record<string, readonly string[]>[];
  readonly parameters?: readonly Parameter[];
  readonly requestBody?: {
    readonly required: boolean;
    readonly content: Record<string, { schema: JsonSchema }>;
  };
  readonly responses: Record<string, Response>;
}

interface Parameter {
  readonly name: string;
  readonly in: "path" | "query";
  readonly required: boolean;
  readonly description?: string;
  readonly schema: JsonSchema;
}

interface Response {
  readonly description: string;
  readonly content?: Record<string, { schema?: JsonSchema }>;
  readonly headers?: Record<string, { description: string; schema: JsonSchema }>;
}

const SCHEMA_REF = "#/components/schemas/";
const BEARER = [{ bearer: [] }] as const;

/** The document of every route in API_ROUTES; built once, it never changes while running. */
export const apiDocument = (() => {
  let built: OpenApiDocument | undefined;
  return () => {
    built ??= buildOpenApiDocument(API_ROUTES, rootPackage.version);
    return built;
  };
})();

/** An OpenAPI 3.1 document (JSON Schema draft 2020-12) of declared routes, grouped. */
export function buildOpenApiDocument(
  groups: Readonly<Record<string, Readonly<Record<string, RouteDeclaration>>>>,
  version: string,
): OpenApiDocument {
  const paths: Record<string, Record<string, Operation>> = {};
  const tags = new Set<string>();
  for (const [group, routes] of Object.entries(groups)) {
    for (const [name, route] of Object.entries(routes)) {
      const path = route.url.replace(/:(\w+)/g, "{$1}");
      paths[path] ??= {};
      paths[path][route.method.toLowerCase()] = operation(`${group}.${name}`, route);
      tags.add(route.tag);
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Evergreen",
      version,
      description:
        "Keeps OAuth access tokens fresh. Every /v1 route needs `Authorization: Bearer <key>`, a key holding the route's scope (`x-required-scope`; `admin` holds them all). Errors are `{error, message}`.",
    },
    paths,
    components: {
      schemas: componentSchemas(),
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "One of API_KEYS; a named key holds only its scopes.",
        },
      },
    },
    security: BEARER,
    tags: [...tags].map((name) => ({ name })),
  };
}

function operation(operationId: string, route: RouteDeclaration): Operation {
  const isPublic = route.scope === "public";
  const scopeNote = isPublic
    ? "Public: no API key."
    : `Requires the ${[route.scope].flat().join(" or ")} scope.`;
  const parameters = [...parametersOf(route.params, "path"), ...parametersOf(route.query, "query")];
  const hasBody = route.method !== "GET";
  return {
    operationId,
    tags: [route.tag],
    summary: route.summary,
    description: [route.description, scopeNote].filter(Boolean).join("\n\n"),
    ...(isPublic ? {} : { "x-required-scope": route.scope }),
    security: isPublic ? [] : BEARER,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(route.body
      ? {
          requestBody: {
            required: !route.body.safeParse(undefined).success,
            content: { "application/json": { schema: schemaOf(route.body, "input") } },
          },
        }
      : {}),
    responses: {
      ...sharedErrors(route, isPublic, hasBody),
      ...Object.fromEntries(
        Object.entries(route.responses).map(([status, spec]) => [status, response(status, spec)]),
      ),
    },
  };
}

/** The errors every route of its kind may answer, whatever it declares (SPEC §3). */
function sharedErrors(
  route: RouteDeclaration,
  isPublic: boolean,
  hasBody: boolean,
): Record<string, Response> {
  if (isPublic) return {};
  const error = (description: string, status = "") =>
    response(status, { description, schema: errorBody });
  return {
    400: error(
      "`invalid_request`: bad JSON, a failed validation or an unknown field; the message names the field.",
    ),
    401: error("`unauthorized`: no API key, or an unknown one."),
    403: error("`forbidden`: the key lacks the route's scope."),
    ...(route.params
      ? { 404: error(`\`not_found\`: ${route.notFound ?? "no such resource"}.`) }
      : {}),
    ...(hasBody
      ? {
          413: error("`payload_too_large`: a body over 1 MiB."),
          415: error(
            "`unsupported_media_type`: a body that is not JSON, JSON declared in a charset other than UTF-8, or one sent with a Content-Encoding.",
          ),
        }
      : {}),
    503: error(
      "`unavailable`: PostgreSQL or Redis is unreachable, or this process is stopping; retry.",
      "503",
    ),
  };
}

const STATUS_TEXT: Record<string, string> = {
  200: "OK.",
  201: "Created.",
  204: "No content.",
};

function response(status: string, spec: ResponseSpec): Response {
  if (spec instanceof z.ZodType) {
    return {
      description: STATUS_TEXT[status] ?? "Answer.",
      content: { "application/json": { schema: schemaOf(spec, "output") } },
    };
  }
  const contentType = spec.contentType ?? (spec.schema ? "application/json" : undefined);
  // Every 503 carries one (server.ts).
  const headers =
    status === "503"
      ? { "retry-after": "seconds to wait before retrying", ...spec.headers }
      : spec.headers;
  return {
    description: spec.description,
    ...(contentType
      ? {
          content: {
            [contentType]: spec.schema ? { schema: schemaOf(spec.schema, "output") } : {},
          },
        }
      : {}),
    ...(headers
      ? {
          headers: Object.fromEntries(
            Object.entries(headers).map(([name, description]) => [
              name,
              { description, schema: { type: "string" } },
            ]),
          ),
        }
      : {}),
  };
}

/** One parameter per property of a path or query schema. */
function parametersOf(schema: z.ZodType | undefined, where: "path" | "query"): Parameter[] {
  if (!schema) return [];
  const json = convert(schema, "input");
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, { description, ...property }]) => ({
    name,
    in: where,
    required: where === "path" || required.has(name),
    ...(typeof description === "string" ? { description } : {}),
    schema: property,
  }));
}

/** A reference to a named schema, or the schema inline. */
function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const registry = io === "input" ? requestSchemas : responseSchemas;
  const named = registry.get(schema);
  return named ? { $ref: `${SCHEMA_REF}${named.id}` } : convert(schema, io);
}

const OPTIONS = {
  target: "draft-2020-12",
  uri: (id: string) => `${SCHEMA_REF}${id}`,
  // ISO instants are written by Date.toISOString(): the format says it, and zod's
  // 400-character pattern for it would only bury the document.
  override: ({ jsonSchema }: { jsonSchema: JsonSchema }) => {
    if (jsonSchema.format === "date-time") delete jsonSchema.pattern;
  },
} as const;

function convert(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { ...OPTIONS, io }) as JsonSchema;
  return json;
}

/**
 * The named schemas: request bodies as clients send them (before transforms), answers as
 * the API sends them.
 */
function componentSchemas(): Record<string, JsonSchema> {
  const schemas: Record<string, JsonSchema> = {};
  for (const [registry, io] of [
    [requestSchemas, "input"],
    [responseSchemas, "output"],
  ] as const) {
    const converted = z.toJSONSchema(registry, { ...OPTIONS, io }).schemas;
    for (const [id, { $schema: _, $id: __, ...json }] of Object.entries(converted)) {
      if (id in schemas) throw new Error(`two schemas are named ${id}`);
      schemas[id] = json;
    }
  }
  return Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));
}
