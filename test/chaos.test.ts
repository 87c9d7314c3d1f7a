import { describe, expect, it } from "vitest";
import { runChaos } from "../chaos/run";

// The chaos suite, short and seeded: 2 minutes of overlapping faults against the real apps
// on a private PostgreSQL and Redis (ports 15450-15466, clear of the machine's services and
// of `npm run chaos`'s 15400 range). Every invariant must hold; the report is printed.
describe("chaos suite", () => {
  it(
    "holds every invariant through two minutes of seeded faults",
    async () => {
      const result = await runChaos({
        minutes: 2,
        seed: 1313,
        connections: 600,
        portBase: 15450,
        command: "test/chaos.test.ts (seed 1313, 2 min, 600 connections)",
        log: () => {},
      });
      console.log(result.report);
      expect(result.verdicts.filter((verdict) => !verdict.holds)).toEqual([]);
    },
    // Setup under load, 2 min of faults, up to 2 min of recovery and the final checks.
    10 * 60_000,
  );
});
