import { describe, expect, it } from "vitest";
import { createMetrics } from "./metrics";

describe("createMetrics", () => {
  it("publishes the build and runtime as labels of a constant 1", async () => {
    const { registry } = createMetrics({ version: "1.2.3" });
    expect(await registry.metrics()).toContain(
      `evergreen_build_info{version="1.2.3",node="${process.version}"} 1`,
    );
  });

  it("asks each dependency at scrape time, and reads one that hangs as down rather than hang", async () => {
    let postgresUp = true;
    const { registry } = createMetrics({
      version: "test",
      dependencies: {
        postgres: async () => {
          if (!postgresUp) throw new Error("connect ECONNREFUSED");
        },
        redis: () => new Promise(() => {}),
      },
      dependencyTimeoutMs: 50,
    });
    const scrape = await registry.metrics();
    expect(scrape).toContain('evergreen_dependency_up{dependency="postgres"} 1');
    expect(scrape).toContain('evergreen_dependency_up{dependency="redis"} 0');
    postgresUp = false;
    expect(await registry.metrics()).toContain('evergreen_dependency_up{dependency="postgres"} 0');
  });

  it("starts the refresh path's counters at 0 for every label value they take", async () => {
    const scrape = await createMetrics({ version: "test" }).registry.metrics();
    for (const series of [
      'evergreen_refresh_infra_errors_total{dependency="postgres"} 0',
      'evergreen_refresh_infra_errors_total{dependency="redis"} 0',
      'evergreen_parked_answers_total{action="stored"} 0',
      'evergreen_parked_answers_total{action="drained"} 0',
      'evergreen_lock_contended_total{source="worker"} 0',
      'evergreen_lock_contended_total{source="api"} 0',
    ]) {
      expect(scrape).toContain(series);
    }
  });
});
