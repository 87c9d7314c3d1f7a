import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { checkDependencies, type ReadinessCheck } from "./ops-server";

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

/** What the refresh path depends on; the `dependency` label's values. */
export const DEPENDENCIES = ["postgres", "redis"] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

/** What happens to a parked answer (see ParkedAnswers in @evergreen/refresh). */
export const PARKED_ACTIONS = ["stored", "drained"] as const;

/** Who refreshes: the `source` label's values (SPEC §6). */
export const LOCK_SOURCES = ["worker", "api"] as const;

export interface MetricsOptions {
  /** `evergreen_build_info{version}`: EVERGREEN_VERSION, else the root package.json version. */
  readonly version: string;
  /**
   * The checks `/readyz` runs, by dependency: `evergreen_dependency_up` runs them at each
   * scrape. A process without them publishes no such series.
   */
  readonly dependencies?: Readonly<Record<Dependency, ReadinessCheck>>;
  /**
   * Per-check limit at scrape time, well under Prometheus' scrape timeout (10 s), so a
   * dependency that hangs reads as down instead of failing the whole scrape.
   * @defaultValue 1000
   */
  readonly dependencyTimeoutMs?: number;
}

/**
 * The metrics every process has, on one registry per process: build and dependency state,
 * and those of the refresh path (SPEC §6), which the worker and the api both run. The
 * scheduler's gauges (createSchedulerMetrics) and the api's HTTP metrics
 * (createHttpMetrics) are added to the same registry by those processes alone, so that no
 * process publishes a gauge it never sets. Labels only take bounded values: provider ids,
 * integration keys, route templates, fixed words; never user or connection ids.
 */
export function createMetrics(options: MetricsOptions) {
  // No label of our own on every series (SPEC §6 gives each metric's labels): Prometheus
  // tells processes apart by the `job` and `instance` labels of its scrape.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const registers = [registry];
  new Gauge({
    name: "evergreen_build_info",
    help: "Always 1; the labels say which build and Node.js runtime this process runs.",
    labelNames: ["version", "node"] as const,
    registers,
  }).set({ version: options.version, node: process.version }, 1);

  const { dependencies } = options;
  if (dependencies) {
    const dependencyUp = new Gauge({
      name: "evergreen_dependency_up",
      help: "1 when the dependency answered the readiness check at scrape time, else 0.",
      labelNames: ["dependency"] as const,
      registers,
      collect: async () => {
        const results = await checkDependencies(dependencies, options.dependencyTimeoutMs ?? 1000);
        for (const [dependency, up] of results) dependencyUp.set({ dependency }, up ? 1 : 0);
      },
    });
  }

  const refreshInfraErrors = new Counter({
    name: "evergreen_refresh_infra_errors_total",
    help: "Refreshes that failed on a PostgreSQL or Redis error and will be retried.",
    labelNames: ["dependency"] as const,
    registers,
  });
  const parkedAnswersTotal = new Counter({
    name: "evergreen_parked_answers_total",
    help: "Provider answers parked in Redis because PostgreSQL refused them (stored), and parked answers the refresh path took back out (drained: written, or superseded by newer tokens).",
    labelNames: ["action"] as const,
    registers,
  });
  const decryptionFailures = new Counter({
    name: "evergreen_decryption_failures_total",
    help: "Refreshes, token reads and grant revocations that could not open a stored token or secret: its key id is missing from this process's ENCRYPTION_KEYS (a rotation's restart skipped), or the ciphertext was altered. Retried, the connection left as it is; see npm run keys:status.",
    labelNames: ["source"] as const,
    registers,
  });
  const lockContended = new Counter({
    name: "evergreen_lock_contended_total",
    help: "Refreshes that found the connection's lock held by someone else.",
    labelNames: ["source"] as const,
    registers,
  });
  // Every series exists from the start, so that increase() sees the first error.
  for (const dependency of DEPENDENCIES) refreshInfraErrors.inc({ dependency }, 0);
  for (const action of PARKED_ACTIONS) parkedAnswersTotal.inc({ action }, 0);
  for (const source of LOCK_SOURCES) {
    lockContended.inc({ source }, 0);
    decryptionFailures.inc({ source }, 0);
  }

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
    lockContended,
    integrationRefreshTotal: new Counter({
      name: "evergreen_integration_refresh_total",
      help: "Refresh attempts by integration and outcome: evergreen_refresh_total split by integration, where one provider serves several (two generic oauth2 integrations, say).",
      labelNames: ["integration", "outcome"] as const,
      registers,
    }),
    refreshInfraErrors,
    decryptionFailures,
    parkedAnswersTotal,
    refreshStoppedInDoubt: new Counter({
      name: "evergreen_refresh_stopped_in_doubt_total",
      help: "Connections stopped (needs_reauth, lastError in_doubt) because a refresh's answer was lost (a timeout, a broken connection, a sender killed after sending) at a provider that rotates refresh tokens, with no reuse grace left to send the token again (docs/adr/0016). Counted as transient in evergreen_refresh_total.",
      labelNames: ["provider"] as const,
      registers,
    }),
    webhookDeliveries: new Counter({
      name: "evergreen_webhook_deliveries_total",
      help: "Webhook delivery attempts by event type and outcome.",
      labelNames: ["event", "outcome"] as const,
      registers,
    }),
    revocationsTotal: new Counter({
      name: "evergreen_revocations_total",
      help: "Grants of deleted connections revoked at the provider, by provider and outcome (revoked, already_dead, failed, gave_up, retry).",
      labelNames: ["provider", "outcome"] as const,
      registers,
    }),
    validationsTotal: new Counter({
      name: "evergreen_validations_total",
      help: "Access tokens checked at the provider, by provider and outcome (valid, invalid, revoked: invalid before its expiry and the connection moved to needs_reauth, expired: past its stored expiry so not asked, no_verdict, unsupported).",
      labelNames: ["provider", "outcome"] as const,
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
