// `npm run chaos -- --minutes N [--seed S] [--connections N] [--port-base 15400] [--report docs/chaos.md] [--app-logs file]`
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { parseArgs, promisify } from "node:util";
import { runChaos } from "./run";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "20" },
    seed: { type: "string" },
    connections: { type: "string", default: "3000" },
    report: { type: "string", default: "docs/chaos.md" },
    "port-base": { type: "string", default: "15400" },
    "app-logs": { type: "string" },
  },
});
const minutes = Number(values.minutes);
const connections = Number(values.connections);
const portBase = Number(values["port-base"]);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const problems = [
  !(minutes > 0) && `--minutes must be a positive number, got "${values.minutes}"`,
  !Number.isInteger(seed) && `--seed must be an integer, got "${values.seed}"`,
  !(Number.isInteger(connections) && connections >= 10) &&
    `--connections must be an integer of at least 10, got "${values.connections}"`,
  !(Number.isInteger(portBase) && portBase >= 1024 && portBase <= 65_000) &&
    `--port-base must be a port from 1024 to 65000, got "${values["port-base"]}"`,
].filter(Boolean);
if (problems.length > 0) {
  for (const problem of problems) console.error(`chaos: ${problem}`);
  process.exit(2);
}

const command = `npm run chaos -- --minutes ${minutes} --seed ${seed} --connections ${connections}`;
console.log(`chaos: replay with \`${command}\``);
// Ctrl-C ends the fault phase; the run still judges what it saw and cleans up.
const abort = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => abort.abort());

try {
  const result = await runChaos({
    minutes,
    seed,
    connections,
    portBase,
    command,
    signal: abort.signal,
    ...(values["app-logs"] ? { appLogFile: values["app-logs"] } : {}),
  });
  await writeFile(values.report, result.report);
  // The report is committed: aligned as `npm run lint` (Biome) formats markdown tables.
  await promisify(execFile)("npx", ["biome", "format", "--write", values.report]).catch(() => {});
  console.log(result.report);
  console.log(`chaos: report written to ${values.report}`);
  process.exitCode = result.holds ? 0 : 1;
} catch (error) {
  console.error(`chaos: the run failed: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 2;
}
