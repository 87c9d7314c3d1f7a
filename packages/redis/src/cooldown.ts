import type { RedisClient } from "./connection";
import { type KeyPrefix, toKeyPrefix } from "./key-prefix";

// Keep the later of the current and the requested end, so a short Retry-After never cuts
// a longer cooldown another process just started.
const EXTEND_TO = `local left = redis.call("pttl", KEYS[1])
if left < tonumber(ARGV[1]) then redis.call("set", KEYS[1], "1", "PX", ARGV[1]) end
return 0`;

// A 429 that stated no usable wait. Inside a running cooldown it is one more answer of the
// same burst (every request in flight meets the limit at once): the cooldown stands. After
// one, it is a retry that met the limit again: twice the last such wait, from ARGV[1] up to
// ARGV[2]. The last wait is forgotten after a quiet spell of four waits.
const DOUBLE = `local left = redis.call("pttl", KEYS[1])
if left > 0 then return left end
local wait = math.min(tonumber(ARGV[2]), math.max(tonumber(ARGV[1]), 2 * tonumber(redis.call("get", KEYS[2]) or "0")))
redis.call("set", KEYS[1], "1", "PX", wait)
redis.call("set", KEYS[2], wait, "PX", 4 * wait)
return wait`;

/**
 * A pause shared by every process, per scope (an integration): after a provider answers
 * 429, refreshes against the same integration wait until the cooldown passes.
 *
 * Sharded (one prefix per refresh queue shard), a cooldown is written to every shard and
 * read from the reader's own: a 429 is rare, a read happens on every refresh, and each
 * refresh then touches only its own shard's slot (docs/adr/0017).
 */
export class Cooldown {
  readonly #redis: RedisClient;
  readonly #prefix: KeyPrefix;

  constructor(redis: RedisClient, prefix: string | KeyPrefix) {
    this.#redis = redis;
    this.#prefix = toKeyPrefix(prefix);
  }

  async start(scope: string, durationMs: number): Promise<void> {
    if (durationMs <= 0) return;
    const ms = String(Math.ceil(durationMs));
    await Promise.all(
      this.#prefix.all.map((prefix) => this.#redis.eval(EXTEND_TO, 1, prefix + scope, ms)),
    );
  }

  /**
   * For a 429 that stated no wait (no Retry-After, or 0): a cooldown that doubles while the
   * provider keeps refusing, where a fixed one retried it every `minMs` for as long as it
   * refused. Decided in the first shard's copy, then written to every shard like start().
   * @returns the cooldown in force, in milliseconds
   */
  async startDoubling(scope: string, minMs: number, maxMs: number): Promise<number> {
    const [first = "", ...rest] = this.#prefix.all;
    const keys = [first + scope, `${first + scope}:unstated`];
    const waitMs = Number(
      await this.#redis.eval(
        DOUBLE,
        2,
        ...keys,
        String(Math.ceil(minMs)),
        String(Math.ceil(maxMs)),
      ),
    );
    const ms = String(waitMs);
    await Promise.all(rest.map((prefix) => this.#redis.eval(EXTEND_TO, 1, prefix + scope, ms)));
    return waitMs;
  }

  /**
   * Milliseconds left, 0 when none.
   * @param routingKey whose shard's copy to read (a connection id); shard 0 when omitted.
   */
  async remainingMs(scope: string, routingKey?: string): Promise<number> {
    const prefix =
      routingKey === undefined ? (this.#prefix.all[0] ?? "") : this.#prefix.of(routingKey);
    return Math.max(0, await this.#redis.pttl(prefix + scope));
  }
}
