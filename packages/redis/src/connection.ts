import { setTimeout as sleep } from "node:timers/promises";
import {
  Cluster,
  type ClusterOptions,
  type ClusterNode as IORedisClusterNode,
  Redis,
} from "ioredis";

/**
 * `consumer` connections back BullMQ workers and must block forever on commands
 * (BullMQ requires `maxRetriesPerRequest: null`). `producer` connections serve request
 * paths (api, scheduler, locks) and fail fast so a Redis outage becomes a 503, not a hang.
 */
export type RedisRole = "consumer" | "producer";

/** A single Redis or a Redis Cluster: every command the project sends works on both. */
export type RedisClient = Redis | Cluster;

export interface ClusterNode {
  readonly host: string;
  readonly port: number;
}

/** Where Redis is: REDIS_URL, and REDIS_CLUSTER_NODES when it is a cluster. */
export interface RedisTarget {
  /** For a cluster, only its credentials and `rediss:` (TLS) are used. */
  readonly url: string;
  /** Seed nodes; set means cluster mode (ioredis discovers the rest). */
  readonly clusterNodes?: readonly ClusterNode[] | undefined;
}

/** The target the REDIS_URL and REDIS_CLUSTER_NODES settings name. */
export function redisTarget(settings: {
  readonly REDIS_URL: string;
  readonly REDIS_CLUSTER_NODES?: readonly ClusterNode[] | undefined;
}): RedisTarget {
  return { url: settings.REDIS_URL, clusterNodes: settings.REDIS_CLUSTER_NODES };
}

// Keep reconnecting with a capped backoff: a Redis restart is an outage to ride out
// (and /readyz reports it meanwhile), never a reason for the process to die.
const reconnectDelay = (attempt: number) => Math.min(attempt * 200, 5_000);

export interface RedisConnectionOptions {
  /**
   * A producer's command fails ("Command timed out") when Redis has not answered it in this
   * time: a Redis that hangs (a frozen VM, dropped packets) rather than one that is down,
   * which `maxRetriesPerRequest` covers. Unbounded by default.
   */
  readonly commandTimeoutMs?: number;
}

/** A single Redis at `url`; with a RedisTarget, a cluster when it names cluster nodes. */
export function createRedis(
  url: string,
  role: RedisRole,
  name?: string,
  settings?: RedisConnectionOptions,
): Redis;
export function createRedis(
  target: string | RedisTarget,
  role: RedisRole,
  name?: string,
  settings?: RedisConnectionOptions,
): RedisClient;
export function createRedis(
  target: string | RedisTarget,
  role: RedisRole,
  name?: string,
  { commandTimeoutMs }: RedisConnectionOptions = {},
): RedisClient {
  const { url, clusterNodes } = typeof target === "string" ? { url: target } : target;
  const options = {
    connectionName: name,
    maxRetriesPerRequest: role === "consumer" ? null : 1,
    retryStrategy: reconnectDelay,
    // BullMQ's consumers block on purpose; only producers take a limit.
    ...(role === "producer" && commandTimeoutMs !== undefined
      ? { commandTimeout: commandTimeoutMs }
      : {}),
  };
  // Hundreds of refreshes in flight each send a few small commands (lock, cooldown,
  // enqueue): batching those issued in the same tick saves a syscall per command. Not
  // under a command timeout: ioredis sends a connection's next batch only once the one
  // before has settled, and a command's timeout starts when it is sent, so against a
  // Redis that hangs a command issued meanwhile waited out the earlier batch's timeout and
  // then its own (a refresh request answered 503 after 10 s, not 5).
  const enableAutoPipelining = role === "producer" && commandTimeoutMs === undefined;
  if (!clusterNodes || clusterNodes.length === 0) {
    return new Redis(url, { ...options, enableAutoPipelining });
  }
  const parsed = new URL(url);
  const seeds = clusterNodes.map(({ host, port }) => ({ host, port }));
  const clusterOptions: ClusterOptions = {
    enableAutoPipelining,
    clusterRetryStrategy: reconnectDelay,
    // ioredis's cluster `connect()` never settles when its ready check (CLUSTER INFO) finds
    // the cluster failing: it reconnects on its own but drops the caller's promise
    // (redis/ioredis#709). BullMQ awaits that promise when it resets a consumer's blocking
    // connection, and one reset during a failover stopped that queue's consumer for good:
    // due jobs sat in the delayed set, their marker unread. A consumer connects once it has
    // the slots; a command sent while the cluster fails is refused and retried.
    ...(role === "consumer" ? { enableReadyCheck: false } : {}),
    redisOptions: {
      ...options,
      ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
      ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
      ...(parsed.protocol === "rediss:" ? { tls: {} } : {}),
    },
  };
  return role === "producer" && commandTimeoutMs !== undefined
    ? // No queue of its own either: with no node to send to, a command fails at once (a 503)
      // rather than waiting out its timeout, and is not kept to be replayed, stale, when a
      // node comes back.
      new TimedCluster(seeds, { ...clusterOptions, enableOfflineQueue: false }, commandTimeoutMs)
    : new Cluster(seeds, clusterOptions);
}

/**
 * A cluster client whose commands fail ("Command timed out") when not answered in time,
 * counted from when they are issued, wherever they wait: each node's connection bounds a
 * command it sends, but not one the cluster client holds itself (every node unreachable,
 * a redirection being retried), and an api's refresh request then hung for as long as the
 * cluster was away, where a single Redis answered 503.
 */
class TimedCluster extends Cluster {
  readonly #timeoutMs: number;

  constructor(nodes: IORedisClusterNode[], options: ClusterOptions, timeoutMs: number) {
    super(nodes, options);
    this.#timeoutMs = timeoutMs;
  }

  override sendCommand(...args: Parameters<Cluster["sendCommand"]>): unknown {
    // The first timer set on a command is the one that counts (the node's comes later).
    args[0].setTimeout(this.#timeoutMs);
    return super.sendCommand(...args);
  }
}

/** How long a closing connection waits for Redis to answer its QUIT. */
const QUIT_WAIT_MS = 2_000;

/**
 * Closes a connection on shutdown, once nothing is in flight on it: QUIT, or a plain
 * disconnect when Redis does not answer soon. Each connection of a worker waited out a
 * 10 s shutdown step against a frozen Redis, and with the drain before them the worker
 * needed 45 s to stop, past the 30 s an orchestrator gives before SIGKILL.
 * @throws Error after disconnecting, when Redis did not answer the QUIT in time or refused it
 */
export async function closeRedis(redis: RedisClient): Promise<void> {
  const quit = redis.quit().then(
    () => "answered" as const,
    (error: unknown) => error,
  );
  const outcome = await Promise.race([quit, sleep(QUIT_WAIT_MS, "late" as const, { ref: false })]);
  if (outcome === "answered") return;
  redis.disconnect();
  throw outcome === "late"
    ? new Error(`Redis did not answer QUIT within ${QUIT_WAIT_MS} ms; disconnected`)
    : outcome;
}
