import { Gauge, Histogram, type Registry } from "prom-client";

/**
 * The scheduler's view of the whole deployment, published after each sweep from indexed
 * PostgreSQL queries and small Redis reads. Only the scheduler registers these: a gauge
 * that a process never sets would read 0 there (a "last sweep" at 1970 on every worker).
 */
export function createSchedulerMetrics(registry: Registry) {
  const registers = [registry];
  return {
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
    queueWorkers: new Gauge({
      name: "evergreen_queue_workers",
      help: "Worker processes connected to the refresh queue.",
      registers,
    }),
    overdue: new Gauge({
      name: "evergreen_connections_overdue",
      help: "Active or expired connections whose refresh is past due by more than the grace (60 s).",
      labelNames: ["integration"] as const,
      registers,
    }),
    overdueOldest: new Gauge({
      name: "evergreen_overdue_oldest_seconds",
      help: "How long the most overdue refresh has been due; 0 when none is overdue.",
      registers,
    }),
    expiredActive: new Gauge({
      name: "evergreen_expired_active_connections",
      help: "Active connections with a refresh token whose access token has expired.",
      labelNames: ["integration"] as const,
      registers,
    }),
    refreshTokensExpiring: new Gauge({
      name: "evergreen_refresh_tokens_expiring",
      help: "Active or expired connections whose refresh token dies within 7 days (or has), where the provider states when.",
      labelNames: ["integration"] as const,
      registers,
    }),
    coolingDown: new Gauge({
      name: "evergreen_integration_cooling_down",
      help: "1 while the integration waits out a provider's 429, else 0.",
      labelNames: ["integration"] as const,
      registers,
    }),
    parkedAnswers: new Gauge({
      name: "evergreen_parked_answers",
      help: "Provider answers parked in Redis, waiting for PostgreSQL to take them.",
      registers,
    }),
    ciphertexts: new Gauge({
      name: "evergreen_ciphertexts",
      help: "Ciphertexts in PostgreSQL per key id of ENCRYPTION_KEYS: a rotation is done when only the primary key's remain.",
      labelNames: ["key_id"] as const,
      registers,
    }),
    revocationsPending: new Gauge({
      name: "evergreen_revocations_pending",
      help: "Grants of deleted connections still to revoke at their provider (pending_revocations rows).",
      registers,
    }),
    revocationsOldest: new Gauge({
      name: "evergreen_revocations_pending_oldest_seconds",
      help: "Age of the oldest grant still to revoke; 0 when none is pending (given up at 24 h).",
      registers,
    }),
    sweepDuration: new Histogram({
      name: "evergreen_sweep_duration_seconds",
      help: "One sweep: queue reconciliation and these gauges.",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    sweepLastSuccess: new Gauge({
      name: "evergreen_sweep_last_success_timestamp_seconds",
      help: "Unix time at which the last sweep succeeded.",
      registers,
    }),
  };
}

export type SchedulerMetrics = ReturnType<typeof createSchedulerMetrics>;
