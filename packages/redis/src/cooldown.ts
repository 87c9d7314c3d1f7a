import type { Redis } from "ioredis";

// Keep the later of the current and the requested end, so a short Retry-After never cuts
// a longer cooldown another process just started.
const EXTEND_TO = `local left = redis.call("pttl", KEYS[1])
if left < tonumber(ARGV[1]) then redis.call("set", KEYS[1], "1", "PX", ARGV[1]) end
return 0`;

/**
 * A pause shared by every process, per scope (an integration): after a provider answers
 * 429, refreshes against the same integration wait until the cooldown passes.
 */
export class Cooldown {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async start(scope: string, durationMs: number): Promise<void> {
    if (durationMs <= 0) return;
    await this.#redis.eval(EXTEND_TO, 1, this.#prefix + scope, String(Math.ceil(durationMs)));
  }

  /** Milliseconds left, 0 when none. */
  async remainingMs(scope: string): Promise<number> {
    return Math.max(0, await this.#redis.pttl(this.#prefix + scope));
  }
}
