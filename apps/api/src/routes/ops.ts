import { z } from "zod";
import { defineRoute, responseSchema } from "../route";

/**
 * Probes and scrapers add what query strings they like (Prometheus' scrape `params`): the
 * public ops routes ignore them rather than answer a 400.
 */
const anyQuery = z.looseObject({});

const health = responseSchema(
  "Health",
  z.looseObject({
    status: z.string().describe("ok, not_live, ready or not_ready"),
    reason: z.string().optional(),
    checks: z.record(z.string(), z.enum(["ok", "unavailable"])).optional(),
  }),
);

const tag = "operations";

/** Public routes of the server itself (no API key): ops and the API's own documentation. */
export const opsRoutes = {
  healthz: defineRoute({
    method: "GET",
    url: "/healthz",
    scope: "public",
    tag,
    summary: "Liveness",
    query: anyQuery,
    responses: { 200: health },
  }),
  readyz: defineRoute({
    method: "GET",
    url: "/readyz",
    scope: "public",
    tag,
    summary: "Readiness: PostgreSQL and Redis reachable",
    query: anyQuery,
    responses: {
      200: health,
      503: { description: "A dependency is unreachable.", schema: health },
    },
  }),
  metrics: defineRoute({
    method: "GET",
    url: "/metrics",
    scope: "public",
    tag,
    summary: "Prometheus metrics",
    query: anyQuery,
    responses: {
      200: { description: "Prometheus text exposition format.", contentType: "text/plain" },
    },
  }),
  openapi: defineRoute({
    method: "GET",
    url: "/openapi.json",
    scope: "public",
    tag,
    summary: "This document (OpenAPI 3.1)",
    query: anyQuery,
    responses: {
      200: { description: "The OpenAPI 3.1 document.", contentType: "application/json" },
    },
  }),
  docs: defineRoute({
    method: "GET",
    url: "/docs",
    scope: "public",
    tag,
    summary: "API documentation (HTML, from this document)",
    query: anyQuery,
    responses: { 200: { description: "An HTML page.", contentType: "text/html" } },
  }),
};
