// CPU time of the processes a benchmark part involves, from /proc (Linux), so a part can
// say which of them used how much of the machine while it measured.
import { access, readFile } from "node:fs/promises";
import type { Redis } from "ioredis";
import { redisInfo } from "./support";

/** Linux's USER_HZ: /proc reports CPU time in 1/100 s everywhere Node runs. */
const TICKS_PER_SECOND = 100;

/** User plus system CPU seconds of `pid` so far; 0 once it has exited. */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  // The command name (field 2) may hold spaces; fields after its closing ")" are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / TICKS_PER_SECOND;
}

/**
 * CPU seconds of each given process alive now, by pid, e.g. the PostgreSQL backends
 * serving one database. `coreShare` counts only processes alive at both readings, since
 * one that exited meanwhile takes its time with it.
 */
export async function processesCpuSeconds(
  pids: readonly number[],
): Promise<ReadonlyMap<number, number>> {
  const byPid = new Map<number, number>();
  for (const pid of pids) {
    if (
      await access(`/proc/${pid}/stat`).then(
        () => true,
        () => false,
      )
    ) {
      byPid.set(pid, await processCpuSeconds(pid));
    }
  }
  return byPid;
}

/**
 * Busy CPU seconds of the whole machine, all cores (/proc/stat: everything but idle and
 * iowait). What the named processes do not account for is mostly the kernel's loopback
 * network stack (softirq time charged to no process) and the machine's other services.
 */
export async function machineBusySeconds(): Promise<number> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n", 1)[0] ?? "";
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((sum, value) => sum + value, 0);
  return (total - (ticks[3] ?? 0) - (ticks[4] ?? 0)) / TICKS_PER_SECOND;
}

/** Peak resident memory of `pid` so far (VmHWM), in MiB; 0 once it has exited. */
export async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kib = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0);
  return Math.round(kib / 1024);
}

/** CPU seconds of the Redis server (all its clients, not this run's alone). */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const cpu = await redisInfo(redis, "cpu");
  return Number(cpu.get("used_cpu_user") ?? 0) + Number(cpu.get("used_cpu_sys") ?? 0);
}

/** One process's CPU seconds, or a group's by pid. */
export type CpuReading = number | ReadonlyMap<number, number>;
export type CpuCounters = Readonly<Record<string, () => Promise<CpuReading>>>;
export type CpuSample = Readonly<Record<string, CpuReading>>;

/** Reads every named counter at once. */
export async function sampleCpu(counters: CpuCounters): Promise<CpuSample> {
  const entries = await Promise.all(
    Object.entries(counters).map(async ([name, read]) => [name, await read()] as const),
  );
  return Object.fromEntries(entries);
}

function secondsUsed(before: CpuReading | undefined, after: CpuReading): number {
  if (typeof after === "number") return after - (typeof before === "number" ? before : 0);
  let total = 0;
  for (const [pid, seconds] of after) {
    const earlier = typeof before === "object" ? before.get(pid) : undefined;
    if (earlier !== undefined) total += seconds - earlier;
  }
  return total;
}

/** Share of one core each counter used between two samples `seconds` apart, in percent. */
export function coreShare(
  before: CpuSample,
  after: CpuSample,
  seconds: number,
): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after).map(([name, reading]) => [
      name,
      Math.round((100 * secondsUsed(before[name], reading)) / seconds),
    ]),
  );
}
