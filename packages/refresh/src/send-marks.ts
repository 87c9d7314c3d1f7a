import type { KeyPrefix, RedisClient } from "@evergreen/redis";
import { toKeyPrefix } from "@evergreen/redis";

// A mark per connection, `<version>:<holder>:<stage>`: `claimed` before the PostgreSQL claim
// is asked for, `sent` right before the refresh token goes out. A holder that dies leaves its
// claim in PostgreSQL either way, naming it; the mark tells the next holder whether the token
// may have reached the provider (docs/adr/0016): only the dead holder's own `claimed` mark
// says it did not. Once a version was marked sent, a later holder's
// claim of it is `resent` (the version stays "maybe sent": an answer that settles nothing,
// a 429, keeps the version, and a reuse grace allows another send). `sent` is set only over
// the holder's own claim: whoever marked last is the only one who may send.
const CLAIM = `
local current = redis.call("get", KEYS[1])
local stage = "claimed"
if current and string.sub(current, 1, string.len(ARGV[1])) == ARGV[1]
   and not string.find(current, ":claimed$") then
  stage = "resent"
end
redis.call("set", KEYS[1], ARGV[1] .. ARGV[2] .. ":" .. stage, "PX", ARGV[3])
return current`;
const SEND = `
local current = redis.call("get", KEYS[1])
if current == ARGV[1] .. ":claimed" or current == ARGV[1] .. ":resent" then
  redis.call("set", KEYS[1], ARGV[1] .. ":sent", "PX", ARGV[2])
  return 1
end
return 0`;

/**
 * Whether a refresh token of a row version may have been sent, for the holder that finds an
 * earlier claim of that version abandoned. Kept 10 minutes: an abandoned claim is found once
 * its lease runs out and the job comes back (a minute or so); a mark gone by then (or lost
 * with Redis's data) reads as "may have been sent".
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
  async claim(connectionId: string, version: number, holder: string): Promise<string | null> {
    return (await this.#redis.eval(
      CLAIM,
      1,
      this.#key(connectionId),
      `${version}:`,
      holder,
      String(this.#ttlMs),
    )) as string | null;
  }

  /**
   * Marks the version sent; false when the mark is no longer `holder`'s claim (another holder
   * took the version over, or Redis lost it): then nothing may be sent.
   */
  async send(connectionId: string, version: number, holder: string): Promise<boolean> {
    const marked = await this.#redis.eval(
      SEND,
      1,
      this.#key(connectionId),
      `${version}:${holder}`,
      String(this.#ttlMs),
    );
    return marked === 1;
  }
}

/**
 * Whether `mark` shows that `holder`, whose claim of `version` was abandoned, never sent: its
 * own `claimed` mark. Anything else (sent, claimed after a send, another holder's mark, no
 * mark: expired, or lost with Redis's data) reads as "may have been sent".
 */
export function sentNothing(mark: string | null, version: number, holder: string | null): boolean {
  return holder !== null && mark === `${version}:${holder}:claimed`;
}
