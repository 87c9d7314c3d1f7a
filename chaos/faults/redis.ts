import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, type Fault, type FaultContext, holding, type Started } from "./fault";

const run = promisify(execFile);

function redisFault(
  kind: string,
  act: (context: FaultContext) => Promise<void>,
  target: string,
): Fault {
  return {
    kind,
    start(context): Started | null {
      if (!context.cluster.redis.up) return null;
      const end = holding(context, "redis", () => act(context));
      return end && { target, end, healthy: () => ping(context) };
    },
  };
}

/**
 * SIGKILL, down 1-5 s, restarted with its AOF (at most the last second of writes lost), or
 * with its directory wiped first, as a Redis without persistence restarts empty.
 */
function redisKill(keepAof: boolean): Fault {
  return redisFault(
    keepAof ? "Redis SIGKILL, AOF kept" : "Redis SIGKILL, no AOF",
    async ({ cluster, random }) => {
      await cluster.redis.kill();
      if (!keepAof) await cluster.redis.wipe();
      await after(random.between(1, 5));
      await cluster.redis.start();
    },
    "redis",
  );
}

export const redisKillWithAof = redisKill(true);
export const redisKillWithoutAof = redisKill(false);

/** Every key gone at once: queue, locks, cooldowns, parked answers. */
export const redisFlushAll = redisFault(
  "Redis FLUSHALL",
  async (context) => {
    await run("redis-cli", ["-p", String(context.cluster.redis.port), "FLUSHALL"]);
  },
  "redis",
);

async function ping(context: FaultContext): Promise<boolean> {
  if (!context.cluster.redis.up) return false;
  try {
    const { stdout } = await run("redis-cli", ["-p", String(context.cluster.redis.port), "PING"]);
    return stdout.trim() === "PONG";
  } catch {
    return false;
  }
}
