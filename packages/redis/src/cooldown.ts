import type { RedisClient } from "./connection";
import { type KeyPrefix, toKeyPrefix } from "./key-prefix";

// Keep the later of the current and the requested end, so a short Retry-After never cuts
// a longer cooldown another process just started.
const EXTEND_TO = `local left = redis.call("pttl", KEYS[1])
if left < tonumber(ARGV[1]) then redis.call("set", KEYS[1], "1", "PX", ARGV[1]) end
return 0`;

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
   * Milliseconds left, 0 when none.
   * @param routingKey whose shard's copy to read (a connection id); shard 0 when omitted.
   */
  async remainingMs(scope: string, routingKey?: string): Promise<number> {
    const prefix =
      routingKey === undefined ? (this.#prefix.all[0] ?? "") : this.#prefix.of(routingKey);
    return Math.max(0, await this.#redis.pttl(prefix + scope));
  }
}
