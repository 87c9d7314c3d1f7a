import { Counter, Histogram, type Registry } from "prom-client";

/** Answers of the token route (SPEC §3); the only values the `outcome` label takes. */
export const TOKEN_OUTCOMES = [
  /** The stored token was valid for long enough. */
  "stored",
  /** Refreshed first (here, or by the process whose refresh we waited for). */
  "refreshed",
  /** 409: the provider refused the grant. */
  "needs_reauth",
  /** 409: the connection is in `error` (the integration's configuration). */
  "integration_error",
  /** 503: a refresh failed and the stored token has expired. */
  "refresh_failed",
  /** 503: this process is shutting down, or PostgreSQL or Redis is unreachable. */
  "unavailable",
] as const;
export type TokenOutcome = (typeof TOKEN_OUTCOMES)[number];

/** The api's request metrics, by route template (never a raw path: ids would be labels). */
export function createHttpMetrics(registry: Registry) {
  const registers = [registry];
  const tokenRequests = new Counter({
    name: "evergreen_token_requests_total",
    help: "Answers of GET /v1/connections/:id/token by outcome.",
    labelNames: ["outcome"] as const,
    registers,
  });
  for (const outcome of TOKEN_OUTCOMES) tokenRequests.inc({ outcome }, 0);
  return {
    httpRequests: new Counter({
      name: "evergreen_http_requests_total",
      help: "HTTP requests answered, by route template, method and status.",
      labelNames: ["route", "method", "status"] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: "evergreen_http_request_duration_seconds",
      help: "From a request's arrival until its answer was sent.",
      labelNames: ["route", "method"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    tokenRequests,
  };
}

export type HttpMetrics = ReturnType<typeof createHttpMetrics>;
