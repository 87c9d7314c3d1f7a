// `npm run bench`: prints each SPEC §7 figure measured so far, with its conditions.
import { cpus } from "node:os";
import { benchRefreshThroughput } from "./refresh-throughput";

console.log("npm run bench");
console.log(
  `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), node ${process.version}`,
);
console.log("services: PostgreSQL, Redis and the mock provider on this machine (loopback)\n");

const throughput = await benchRefreshThroughput();
console.log("one worker process, every job due at once:");
console.table(throughput);
console.log(
  `refreshes/s sustained by one worker: ${throughput.refreshesPerSecond} (target >= 1000)`,
);
