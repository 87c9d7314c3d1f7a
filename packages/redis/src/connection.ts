import { Redis } from "ioredis";

/**
 * `consumer` connections back BullMQ workers and must block forever on commands
 * (BullMQ requires `maxRetriesPerRequest: null`). `producer` connections serve request
 * paths (api, scheduler, locks) and fail fast so a Redis outage becomes a 503, not a hang.
 */
export type RedisRole = "consumer" | "producer";

export function createRedis(url: string, role: RedisRole, name?: string): Redis {
  return new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: role === "consumer" ? null : 1,
    // Hundreds of refreshes in flight each send a few small commands (lock, cooldown,
    // enqueue): batching those issued in the same tick saves a syscall per command.
    enableAutoPipelining: role === "producer",
    // Keep reconnecting with a capped backoff: a Redis restart is an outage to ride out
    // (and /readyz reports it meanwhile), never a reason for the process to die.
    retryStrategy: (attempt) => Math.min(attempt * 200, 5_000),
  });
}
