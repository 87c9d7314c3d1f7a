import { randomUUID } from "node:crypto";
import type { RedisClient } from "./connection";
import { type KeyPrefix, toKeyPrefix } from "./key-prefix";

// Compare-and-delete and compare-and-extend: only the holder's random token may release
// or extend, so a holder whose lease expired can never free a lock someone else now holds.
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

export interface RedisLockOptions {
  /** Key prefix, e.g. `{evergreen}:lock:`, or one per shard, routed by the resource. */
  readonly prefix: string | KeyPrefix;
  /** Lease length; must be well above the work's own timeout. @defaultValue 30000 */
  readonly ttlMs?: number;
}

/** A held lock. Extended in the background until released; `lost` once it could not be. */
export interface Lease {
  readonly key: string;
  /** Aborted when the lease could not be extended: stop before doing anything visible. */
  readonly signal: AbortSignal;
  /**
   * Renews the lease to a full TTL now; false when it is no longer ours. Call it right
   * before an action that must not happen twice: after a long pause the background beat
   * may not have run yet.
   */
  extend(): Promise<boolean>;
  release(): Promise<void>;
}

/**
 * One lock per resource (a connection), held across processes. `acquire` never waits: a
 * caller that finds the lock busy decides what to do (re-delay a job, wait for the
 * holder's result).
 */
export class RedisLock {
  readonly #redis: RedisClient;
  readonly #prefix: KeyPrefix;
  readonly ttlMs: number;

  constructor(redis: RedisClient, { prefix, ttlMs = 30_000 }: RedisLockOptions) {
    this.#redis = redis;
    this.#prefix = toKeyPrefix(prefix);
    this.ttlMs = ttlMs;
  }

  /** The lease, or `null` when someone else holds the lock. */
  async acquire(resource: string): Promise<Lease | null> {
    const key = this.#prefix.of(resource) + resource;
    // Unique per lease, not secret: randomUUID draws from a pool Node keeps filled.
    const token = randomUUID();
    const ok = await this.#redis.set(key, token, "PX", this.ttlMs, "NX").catch((error: unknown) => {
      // Failed here (a command timeout, a dropped connection), the SET may still run on a
      // Redis that was only slow, and hold the lock for a whole TTL with no one to use or
      // release it. The release goes after it on the same connection, and deletes it if so.
      this.#redis.eval(RELEASE, 1, key, token).catch(() => undefined);
      throw error;
    });
    if (ok !== "OK") return null;

    const controller = new AbortController();
    // Extend at a third of the TTL, so two missed beats still leave the lease alive.
    const timer = setInterval(
      () => {
        this.#redis
          .eval(EXTEND, 1, key, token, String(this.ttlMs))
          .then((extended) => {
            if (extended !== 1) controller.abort(new Error("lock lost"));
          })
          .catch((error: unknown) => controller.abort(error));
      },
      Math.floor(this.ttlMs / 3),
    );
    timer.unref();

    return {
      key,
      signal: controller.signal,
      extend: async () => (await this.#redis.eval(EXTEND, 1, key, token, String(this.ttlMs))) === 1,
      release: async () => {
        clearInterval(timer);
        await this.#redis.eval(RELEASE, 1, key, token);
      },
    };
  }

  /** Milliseconds until the current holder's lease runs out (0 when free). */
  async remainingMs(resource: string): Promise<number> {
    return Math.max(0, await this.#redis.pttl(this.#prefix.of(resource) + resource));
  }
}
