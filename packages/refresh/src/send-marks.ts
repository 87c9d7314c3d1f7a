import type { KeyPrefix, RedisClient } from "@evergreen/redis";
import { toKeyPrefix } from "@evergreen/redis";

// Compare-and-set of a holder's stage: only the holder whose mark stands may move it (from
// `claimed` to `sent`, or back).
const MOVE = `
if redis.call("get", KEYS[1]) == ARGV[1] .. ":" .. ARGV[2] then
  redis.call("set", KEYS[1], ARGV[1] .. ":" .. ARGV[3], "PX", ARGV[4])
  return 1
end
return 0`;

/**
 * A mark per connection, `<version>:<holder>:<stage>`: `claimed` before the PostgreSQL claim
 * is asked for, `sent` right before the refresh token goes out. A holder that dies leaves
 * its claim in PostgreSQL either way, naming it (`claimHolder`); the next holder's claim
 * statement reads the mark it replaced, and only the dead holder's own `claimed` mark says
 * that it never sent (docs/adr/0016). `sent` is set only over the holder's own mark: whoever
 * marked last is the only one who may send. Kept 10 minutes: an abandoned claim is found
 * once its lease runs out and the job comes back (a minute or so); a mark gone by then (or
 * lost with Redis's data) reads as "may have been sent".
 */
export class SendMarks {
  readonly #redis: RedisClient;
  readonly #prefix: KeyPrefix;
  readonly #ttlMs: number;

  constructor(redis: RedisClient, prefix: string | KeyPrefix, ttlMs = 10 * 60_000) {
    this.#redis = redis;
    this.#prefix = toKeyPrefix(prefix);
    this.#ttlMs = ttlMs;
  }

  #key(connectionId: string): string {
    return this.#prefix.of(connectionId) + connectionId;
  }

  /** Marks the version claimed by `holder`; answers the mark it replaced. */
  claim(connectionId: string, version: number, holder: string): Promise<string | null> {
    return this.#redis.set(
      this.#key(connectionId),
      `${version}:${holder}:claimed`,
      "PX",
      this.#ttlMs,
      "GET",
    );
  }

  /**
   * Marks the version sent; false when the mark is no longer `holder`'s claim (another holder
   * took the version over, or Redis lost it): then nothing may be sent.
   */
  async send(connectionId: string, version: number, holder: string): Promise<boolean> {
    return (await this.#move(connectionId, `${version}:${holder}`, "claimed", "sent")) === 1;
  }

  /**
   * Turns `holder`'s `sent` mark back to `claimed`: the provider answered without spending the
   * refresh token (an error, a 429), so a claim this holder leaves behind (its answer could
   * not be stored) reads as one that never sent, not as one that may have rotated the token.
   */
  async withdraw(connectionId: string, version: number, holder: string): Promise<void> {
    await this.#move(connectionId, `${version}:${holder}`, "sent", "claimed");
  }

  #move(connectionId: string, mark: string, from: string, to: string): Promise<unknown> {
    return this.#redis.eval(MOVE, 1, this.#key(connectionId), mark, from, to, String(this.#ttlMs));
  }
}
