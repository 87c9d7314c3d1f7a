// `npm run bench [-- <part>...]` (or BENCH_ONLY=<part>,<part>): prints each SPEC §7
// figure with its conditions. Parts run one after another, each on its own database.
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { benchFaults } from "./faults";
import { benchLateness } from "./lateness";
import { benchRebuild } from "./rebuild";
import { benchRedisMemory } from "./redis-memory";
import { benchRefreshThroughput } from "./refresh-throughput";
import { benchScaling } from "./scaling";
import type { BenchResult } from "./support";

const PARTS = {
  throughput: benchRefreshThroughput,
  lateness: benchLateness,
  memory: benchRedisMemory,
  rebuild: benchRebuild,
  scaling: benchScaling,
  faults: benchFaults,
} satisfies Record<string, () => Promise<BenchResult>>;
type PartName = keyof typeof PARTS;

// biome-ignore lint/suspicious/noUndeclaredEnvVars: `npm run bench` runs tsx, not turbo.
const asked = [...process.argv.slice(2), ...(process.env.BENCH_ONLY ?? "").split(",")]
  .map((name) => name.trim())
  .filter(Boolean);
const unknown = asked.filter((name) => !(name in PARTS));
if (unknown.length > 0) {
  console.error(`unknown part ${unknown.join(", ")}; choose from ${Object.keys(PARTS).join(", ")}`);
  process.exit(2);
}
const chosen = (asked.length > 0 ? [...new Set(asked)] : Object.keys(PARTS)) as PartName[];

console.log(`npm run bench -- ${chosen.join(" ")}`);
console.log(
  `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), node ${process.version}`,
);
console.log("services: PostgreSQL, Redis and the mock provider on this machine (loopback)");

for (const name of chosen) {
  console.log(`\n== ${name} (npm run bench -- ${name}) ==`);
  const started = performance.now();
  const result = await PARTS[name]();
  console.log(result.title);
  console.table(result.table);
  for (const line of result.lines) console.log(line);
  console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
}
