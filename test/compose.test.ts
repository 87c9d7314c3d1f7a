import { readFile } from "node:fs/promises";
import { fields } from "@evergreen/config";
import { refreshDrainMs } from "@evergreen/refresh";
import { webhookDrainMs } from "@evergreen/webhooks";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { apiShutdownBudgets } from "../apps/api/src/shutdown-budgets";
import { NODE_FLAGS } from "./support/app-process";

// No Docker engine runs here, so the compose file is checked by structure: the services
// exist, start in the right order, and the worker can be scaled.
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  init?: boolean;
  profiles?: string[];
  healthcheck?: { test?: string[] };
  volumes?: string[];
  stop_grace_period?: string;
  ports?: string[];
  container_name?: string;
  restart?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
}

// `merge: true` resolves the `<<:` keys Docker Compose supports, as Compose does.
const compose = parse(await readFile(new URL("../docker-compose.yml", import.meta.url), "utf8"), {
  merge: true,
}) as { services: Record<string, Service> };
const { services } = compose;
const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
  scripts: Record<string, string>;
};
const APPS = ["api", "scheduler", "worker"] as const;
const MONITORING = ["alertmanager", "grafana", "prometheus"];

/** Compose durations: "45s", "1m30s", "500ms". */
function durationMs(value: string | undefined): number {
  const units: Record<string, number> = { us: 0.001, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const [, amount, unit] of (value ?? "").matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h)/g)) {
    total += Number(amount) * (units[unit ?? ""] ?? Number.NaN);
  }
  return total;
}

describe("docker-compose.yml", () => {
  it("defines the data services, a one-shot migration, the three apps and monitoring", () => {
    expect(Object.keys(services).sort()).toEqual(
      ["api", "migrate", "postgres", "redis", "scheduler", "worker", ...MONITORING].sort(),
    );
  });

  // `docker compose up -d postgres redis` is the README's answer to "no PostgreSQL or Redis";
  // a `${VAR:?}` anywhere in the file made it fail until the apps' secrets were set.
  it("needs no variable set to be read: the apps refuse a missing secret themselves", async () => {
    const text = await readFile(new URL("../docker-compose.yml", import.meta.url), "utf8");
    expect(text).not.toMatch(/\$\{[A-Z_]+:?\?/);
  });

  it("keeps monitoring behind the `monitoring` profile, and nothing else", () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.profiles ?? [], name).toEqual(MONITORING.includes(name) ? ["monitoring"] : []);
    }
  });

  it("runs Redis with a memory limit and noeviction, and AOF, as BullMQ needs", () => {
    const command = services.redis?.command?.join(" ") ?? "";
    expect(command).toMatch(/--maxmemory \S+/);
    expect(command).toContain("--maxmemory-policy noeviction");
    expect(command).toContain("--appendonly yes");
  });

  it("opens host ports on loopback only", () => {
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it("migrates once before any app starts", () => {
    expect(services.migrate?.command).toEqual(["node", "dist/migrate.mjs"]);
    expect(services.migrate?.restart).toBe("no");
    expect(services.migrate?.depends_on?.postgres?.condition).toBe("service_healthy");
    for (const app of APPS) {
      expect(services[app]?.depends_on?.migrate?.condition).toBe("service_completed_successfully");
      expect(services[app]?.environment?.NODE_ENV).toBe("production");
    }
  });

  // npm -> sh -> npm -> sh -> tsx -> node never passed SIGTERM on: a stop lost the rotated
  // tokens of every refresh in flight (test/signals.test.ts runs these commands). The image
  // runs each app's bundle (ADR 0012), the same entry `npm run start:*` runs under tsx.
  it("starts node itself on the app's bundle, as PID 1 with nothing to reap", () => {
    for (const app of APPS) {
      const flags = NODE_FLAGS[app];
      expect(services[app]?.command).toEqual(["node", ...flags, `dist/${app}.mjs`]);
      expect(pkg.scripts[`start:${app}`]).toBe(
        ["exec node", ...flags, `--import tsx apps/${app}/src/main.ts`].join(" "),
      );
    }
    for (const service of [...APPS, "migrate"]) expect(services[service]?.init).toBeUndefined();
  });

  it("bundles exactly the entries compose runs", async () => {
    const build = await readFile(new URL("../scripts/build.ts", import.meta.url), "utf8");
    for (const app of APPS) expect(build).toContain(`${app}: "apps/${app}/src/main.ts"`);
    expect(build).toContain('migrate: "packages/db/src/migrate-cli.ts"');
  });

  it("checks each app's health with node, on the port it serves /healthz on", () => {
    for (const app of APPS) {
      const test = services[app]?.healthcheck?.test ?? [];
      expect(test.slice(0, 3)).toEqual(["CMD", "node", "-e"]);
      expect(test[3]).toContain("/healthz");
      const env = services[app]?.environment ?? {};
      expect(env.METRICS_PORT ?? env.PORT, app).toMatch(/^\d+$/);
    }
  });

  it("gives Prometheus the scrape config and the alert rules, Grafana its provisioning", () => {
    expect(services.prometheus?.volumes).toContain("./ops/prometheus:/etc/prometheus:ro");
    expect(services.grafana?.volumes).toContain(
      "./ops/grafana/provisioning:/etc/grafana/provisioning:ro",
    );
    expect(services.grafana?.volumes).toContain(
      "./ops/grafana/dashboards:/etc/grafana/dashboards:ro",
    );
  });

  it("gives the image the api's command as its default", async () => {
    const dockerfile = await readFile(new URL("../Dockerfile", import.meta.url), "utf8");
    const cmd = /^CMD (.+)$/m.exec(dockerfile)?.[1] ?? "null";
    expect(JSON.parse(cmd)).toEqual(services.api?.command);
  });

  it("waits longer for each app to stop than its longest drain", () => {
    const env = {
      REFRESH_TIMEOUT_MS: fields.refreshTimeoutMs.parse(
        services.worker?.environment?.REFRESH_TIMEOUT_MS,
      ),
    };
    // Docker's default is 10 s; the closing of queues and connections after a drain needs
    // a few seconds more.
    const margin = 5_000;
    // The worker's refresh and webhook consumers drain side by side.
    expect(durationMs(services.worker?.stop_grace_period)).toBeGreaterThan(
      Math.max(refreshDrainMs(env), webhookDrainMs({ allowInsecureUrls: false })) + margin,
    );
    const api = apiShutdownBudgets(env);
    expect(durationMs(services.api?.stop_grace_period)).toBeGreaterThan(
      api.refreshes + api.httpServer + margin,
    );
    // The scheduler's steps (a sweep in progress, queue, Redis, database) take 10 s each at most.
    expect(durationMs(services.scheduler?.stop_grace_period)).toBeGreaterThan(10_000 + margin);
  });

  it("lets the worker scale: no fixed host port or container name", () => {
    expect(services.worker?.ports).toBeUndefined();
    expect(services.worker?.container_name).toBeUndefined();
  });

  it("passes secrets from the environment, never literal values", () => {
    for (const app of APPS) {
      expect(services[app]?.environment?.ENCRYPTION_KEYS).toMatch(/^\$\{ENCRYPTION_KEYS:-\}$/);
    }
    expect(services.api?.environment?.API_KEYS).toMatch(/^\$\{API_KEYS:-\}$/);
  });
});

interface ScrapeConfig {
  job_name: string;
  dns_sd_configs?: { names: string[]; type: string; port: number }[];
}

describe("ops/prometheus/prometheus.yml", async () => {
  const config = parse(
    await readFile(new URL("../ops/prometheus/prometheus.yml", import.meta.url), "utf8"),
  ) as {
    rule_files: string[];
    scrape_configs: ScrapeConfig[];
    alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
  };

  // A fixed target list would need an edit for every `--scale worker=N`.
  it("finds every replica of each app through the compose network's DNS", () => {
    const ports = { api: 3000, worker: 9464, scheduler: 9465 };
    for (const app of APPS) {
      const job = config.scrape_configs.find((c) => c.job_name === `evergreen-${app}`);
      expect(job?.dns_sd_configs).toEqual([
        expect.objectContaining({ names: [app], type: "A", port: ports[app] }),
      ]);
      const env = services[app]?.environment ?? {};
      expect(Number(env.METRICS_PORT ?? env.PORT)).toBe(ports[app]);
    }
  });

  it("loads the alert rules and sends alerts to the compose Alertmanager", () => {
    expect(config.rule_files).toEqual(["/etc/prometheus/alerts.yml"]);
    expect(config.alerting.alertmanagers[0]?.static_configs[0]?.targets).toEqual([
      "alertmanager:9093",
    ]);
  });
});
