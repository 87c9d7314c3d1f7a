import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// No Docker engine runs here, so the compose file is checked by structure: the services
// exist, start in the right order, and the worker can be scaled.
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
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
    expect(services.migrate?.command).toEqual(["npm", "run", "db:migrate"]);
    expect(services.migrate?.restart).toBe("no");
    expect(services.migrate?.depends_on?.postgres?.condition).toBe("service_healthy");
    for (const app of ["api", "scheduler", "worker"]) {
      expect(services[app]?.depends_on?.migrate?.condition).toBe("service_completed_successfully");
      expect(services[app]?.command).toEqual(["npm", "run", `start:${app}`]);
      expect(services[app]?.environment?.NODE_ENV).toBe("production");
    }
  });

  it("lets the worker scale: no fixed host port or container name", () => {
    expect(services.worker?.ports).toBeUndefined();
    expect(services.worker?.container_name).toBeUndefined();
  });

  it("passes secrets from the environment, never literal values", () => {
    for (const app of ["api", "scheduler", "worker"]) {
      expect(services[app]?.environment?.ENCRYPTION_KEYS).toMatch(/^\$\{ENCRYPTION_KEYS:\?/);
    }
    expect(services.api?.environment?.API_KEYS).toMatch(/^\$\{API_KEYS:\?/);
  });

  it("names only scripts that package.json defines", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
      scripts: Record<string, string>;
    };
    for (const service of Object.values(services)) {
      const script = service.command?.[0] === "npm" ? service.command[2] : undefined;
      if (script) expect(pkg.scripts).toHaveProperty(script);
    }
  });
});
