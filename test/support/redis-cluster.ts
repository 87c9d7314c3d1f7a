import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ClusterNode } from "@evergreen/redis";
import { Redis } from "ioredis";

const run = promisify(execFile);

/** A private Redis Cluster on loopback: 3 primaries, 3 replicas, nothing persisted. */
export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** `host:port,...`, as REDIS_CLUSTER_NODES takes it. */
  readonly spec: string;
  /** The port of the primary serving `slot` now. */
  primaryOf(slot: number): Promise<number>;
  /** GET on one node alone (no redirection): what that node itself holds. */
  getOn(port: number, key: string): Promise<string>;
  /** SIGKILLs one node (no shutdown, no last write). */
  kill(port: number): Promise<void>;
  /** Resolves once `port`'s replica has taken over its slots and the cluster says ok. */
  waitForFailover(deadPort: number, timeoutMs: number): Promise<void>;
  /** Resolves once every node alive reports `cluster_state:fail` (slots lost, no quorum). */
  waitForFailing(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  server.listen(port, "127.0.0.1");
  const outcome = await Promise.race([
    once(server, "listening").then(() => true),
    once(server, "error").then(() => false),
  ]);
  if (outcome) server.close();
  return outcome;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`redis cluster: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `CLUSTER SLOTS` of one node: [start, end, primary port] per range. */
async function slotRanges(port: number): Promise<[number, number, number][]> {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await client.connect();
    const ranges = (await client.call("CLUSTER", "SLOTS")) as [number, number, [string, number]][];
    return ranges.map(([start, end, [, primaryPort]]) => [start, end, primaryPort]);
  } finally {
    client.disconnect();
  }
}

async function clusterState(port: number): Promise<string> {
  const { stdout } = await run("redis-cli", ["-p", String(port), "CLUSTER", "INFO"]);
  return /cluster_state:(\w+)/.exec(stdout)?.[1] ?? "unknown";
}

/**
 * Starts `redis-server --cluster-enabled yes` on `basePort`..`basePort + 5` (and their bus
 * ports, +10000) in a temporary directory, joins them with `redis-cli --cluster create`
 * and waits for `cluster_state:ok`. Whatever happens, `close()` kills every process.
 */
export async function startRedisCluster({
  basePort = 7100,
  nodeTimeoutMs = 2_000,
}: {
  basePort?: number;
  nodeTimeoutMs?: number;
} = {}): Promise<RedisCluster> {
  const ports = Array.from({ length: 6 }, (_, index) => basePort + index);
  for (const port of ports) {
    if (!(await portIsFree(port)) || !(await portIsFree(port + 10_000))) {
      throw new Error(`redis cluster: port ${port} or ${port + 10_000} is taken`);
    }
  }
  const dir = await mkdtemp(join(tmpdir(), "evergreen-redis-cluster-"));
  const processes = new Map<number, ChildProcess>();
  const killAll = () => {
    for (const child of processes.values()) child.kill("SIGKILL");
  };
  // A test runner that dies must not leave six servers behind.
  process.once("exit", killAll);
  const close = async () => {
    const exits = [...processes.values()]
      .filter((child) => child.exitCode === null && child.signalCode === null)
      .map((child) => once(child, "exit"));
    killAll();
    await Promise.all(exits);
    process.off("exit", killAll);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const child = spawn(
        "redis-server",
        [
          ...["--port", String(port), "--bind", "127.0.0.1"],
          ...["--cluster-enabled", "yes", "--cluster-config-file", join(dir, `nodes-${port}.conf`)],
          ...["--cluster-node-timeout", String(nodeTimeoutMs)],
          ...["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir],
        ],
        { stdio: "ignore" },
      );
      processes.set(port, child);
    }
    for (const port of ports) {
      await until(`node ${port}`, 10_000, async () => {
        const { stdout } = await run("redis-cli", ["-p", String(port), "PING"]);
        return stdout.trim() === "PONG" ? true : undefined;
      });
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((port) => `127.0.0.1:${port}`),
      "--cluster-replicas",
      "1",
      "--cluster-yes",
    ]);
    for (const port of ports) {
      await until(`cluster_state:ok on ${port}`, 20_000, async () =>
        (await clusterState(port)) === "ok" ? true : undefined,
      );
    }
    // A replica that never finished its first sync refuses to take over (its data is too
    // old by the replica validity rule): wait until every replica's link is up.
    await until("replicas in sync", 20_000, async () => {
      const roles = await Promise.all(
        ports.map(async (port) => {
          const { stdout } = await run("redis-cli", ["-p", String(port), "INFO", "replication"]);
          return stdout;
        }),
      );
      const replicas = roles.filter((info) => /role:slave/.test(info));
      return replicas.length === 3 && replicas.every((info) => /master_link_status:up/.test(info))
        ? true
        : undefined;
    });
  } catch (error) {
    await close();
    throw error;
  }

  const alive = () =>
    ports.filter((port) => {
      const child = processes.get(port);
      return child?.exitCode === null && child.signalCode === null;
    });
  const primaryOf = async (slot: number) => {
    const [port] = alive();
    if (port === undefined) throw new Error("redis cluster: no node alive");
    const range = (await slotRanges(port)).find(([start, end]) => slot >= start && slot <= end);
    if (!range) throw new Error(`redis cluster: slot ${slot} is not served`);
    return range[2];
  };
  return {
    nodes: ports.map((port) => ({ host: "127.0.0.1", port })),
    spec: ports.map((port) => `127.0.0.1:${port}`).join(","),
    primaryOf,
    async getOn(port, key) {
      const { stdout } = await run("redis-cli", ["-p", String(port), "GET", key]);
      return stdout.trim();
    },
    async kill(port) {
      const child = processes.get(port);
      if (!child) throw new Error(`redis cluster: no node on ${port}`);
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    },
    async waitForFailover(deadPort, timeoutMs) {
      await until(`failover of ${deadPort}`, timeoutMs, async () => {
        const survivors = alive();
        const states = await Promise.all(survivors.map(clusterState));
        if (states.some((state) => state !== "ok")) return undefined;
        const [port] = survivors;
        if (port === undefined) return undefined;
        const primaries = new Set((await slotRanges(port)).map(([, , primary]) => primary));
        return primaries.has(deadPort) || primaries.size < 3 ? undefined : true;
      });
    },
    async waitForFailing(timeoutMs) {
      await until("cluster_state:fail", timeoutMs, async () => {
        const states = await Promise.all(alive().map(clusterState));
        return states.every((state) => state === "fail") ? true : undefined;
      });
    },
    close,
  };
}
