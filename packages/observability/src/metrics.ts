import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Refresh outcomes of SPEC §2; the only values the `outcome` label takes. */
export const REFRESH_OUTCOMES = [
  "success",
  "invalid_grant",
  "invalid_client",
  "rate_limited",
  "transient",
  "unknown",
] as const;
export type RefreshOutcome = (typeof REFRESH_OUTCOMES)[number];

/**
 * Every Evergreen metric of SPEC §6, registered on one registry per process. Labels only
 * take bounded values: provider ids, outcome words, states; never user or connection ids.
 */
export function createMetrics(processName: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ process: processName });
  collectDefaultMetrics({ register: registry });

  const registers = [registry];
  return {
    registry,
    refreshTotal: new Counter({
      name: "evergreen_refresh_total",
      help: "Refresh attempts by provider and outcome.",
      labelNames: ["provider", "outcome"] as const,
      registers,
    }),
    refreshDuration: new Histogram({
      name: "evergreen_refresh_duration_seconds",
      help: "Token endpoint round trip.",
      labelNames: ["provider"] as const,
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    refreshLateness: new Histogram({
      name: "evergreen_refresh_lateness_seconds",
      help: "Refresh start minus its scheduled time.",
      labelNames: ["provider"] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 15, 60, 300],
      registers,
    }),
    tokenRemaining: new Histogram({
      name: "evergreen_token_remaining_seconds",
      help: "Validity left on the old access token when its replacement was stored; negative means it expired first.",
      labelNames: ["provider"] as const,
      buckets: [-300, -60, -1, 0, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
    lockContended: new Counter({
      name: "evergreen_lock_contended_total",
      help: "Refreshes that found the connection's lock held by someone else.",
      labelNames: ["source"] as const,
      registers,
    }),
    connections: new Gauge({
      name: "evergreen_connections",
      help: "Connections by provider and status.",
      labelNames: ["provider", "status"] as const,
      registers,
    }),
    queueJobs: new Gauge({
      name: "evergreen_queue_jobs",
      help: "Refresh jobs by queue state.",
      labelNames: ["state"] as const,
      registers,
    }),
    webhookDeliveries: new Counter({
      name: "evergreen_webhook_deliveries_total",
      help: "Webhook delivery attempts by event type and outcome.",
      labelNames: ["event", "outcome"] as const,
      registers,
    }),
    webhookDeliveryLag: new Histogram({
      name: "evergreen_webhook_delivery_lag_seconds",
      help: "From an event's commit to its successful delivery, retries included.",
      labelNames: ["event"] as const,
      buckets: [0.1, 0.5, 1, 2.5, 5, 15, 60, 300, 3600, 21600, 86400],
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
