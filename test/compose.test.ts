import { readFile } from "node:fs/promises";
import { fields } from "@evergreen/config";
import { refreshDrainMs } from "@evergreen/refresh";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { apiShutdownBudgets } from "../apps/api/src/shutdown-budgets";

// No Docker engine runs here, so the compose file is checked by structure: the services
// exist, start in the right order, and the worker can be scaled.
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  init?: boolean;
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
  it("defines the data services, a one-shot migration and the three apps", () => {
    expect(Object.keys(services).sort()).toEqual(
      ["api", "migrate", "postgres", "redis", "scheduler", "worker"].sort(),
    );
  });

  it("runs Redis with noeviction and AOF, as BullMQ needs", () => {
    const command = services.redis?.command?.join(" ") ?? "";
    expect(command).toContain("--maxmemory-policy noeviction");
    expect(command).toContain("--appendonly yes");
  });

  it("migrates once before any app starts", () => {
    expect(services.migrate?.command).toEqual([
      "node",
      "--import",
      "tsx",
      "packages/db/src/migrate-cli.ts",
    ]);
    expect(services.migrate?.restart).toBe("no");
    expect(services.migrate?.depends_on?.postgres?.condition).toBe("service_healthy");
    for (const app of APPS) {
      expect(services[app]?.depends_on?.migrate?.condition).toBe("service_completed_successfully");
      expect(services[app]?.environment?.NODE_ENV).toBe("production");
    }
  });

  // npm -> sh -> npm -> sh -> tsx -> node never passed SIGTERM on: a stop lost the rotated
  // tokens of every refresh in flight (test/signals.test.ts runs these commands).
  it("starts node itself behind a signal-forwarding init, as `npm run start:*` does", () => {
    for (const app of APPS) {
      const command = services[app]?.command ?? [];
      expect(command).toEqual(["node", "--import", "tsx", `apps/${app}/src/main.ts`]);
      expect(pkg.scripts[`start:${app}`]).toBe(`exec ${command.join(" ")}`);
    }
    for (const service of [...APPS, "migrate"]) expect(services[service]?.init).toBe(true);
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
    expect(durationMs(services.worker?.stop_grace_period)).toBeGreaterThan(
      refreshDrainMs(env) + margin,
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
      expect(services[app]?.environment?.ENCRYPTION_KEYS).toMatch(/^\$\{ENCRYPTION_KEYS:\?/);
    }
    expect(services.api?.environment?.API_KEYS).toMatch(/^\$\{API_KEYS:\?/);
  });
});
