import { type KeyPrefix, type RedisClient, toKeyPrefix } from "@evergreen/redis";
import type { ConnectionChange, ConnectionEventInput, WriteFence } from "./connection-store";

/** A provider's answer that could not be stored, as the write it was going to be. */
export interface ParkedAnswer {
  readonly fence: WriteFence;
  readonly change: ConnectionChange;
  readonly event: ConnectionEventInput;
}

const DATE_FIELDS = [
  "expiresAt",
  "refreshTokenExpiresAt",
  "nextRefreshAt",
  "lastRefreshedAt",
  "lastErrorAt",
  "inDoubtSince",
] as const;

/**
 * Where a refresh puts a provider's answer when PostgreSQL cannot take it: a rotating
 * provider has already revoked the refresh token in the row, so the answer (tokens sealed
 * by the key ring, as they would be stored) is the grant's only copy until the next try
 * writes it. Kept a week: longer than any outage worth riding out.
 *
 * Beside the answers, one sorted set holds the parked ids, scored by when each answer's key
 * expires, written in the same transaction as the answer: counting them is then one small
 * command, where a SCAN of the keyspace would walk every job of a million connections.
 * With a sharded refresh queue, each shard has its own index, and an answer sits in its
 * connection's shard (one slot for both keys, as MULTI on a Redis Cluster requires).
 */
export class ParkedAnswers {
  readonly #redis: RedisClient;
  readonly #prefix: KeyPrefix;
  readonly #ttlMs: number;

  constructor(redis: RedisClient, prefix: string | KeyPrefix, ttlMs = 7 * 24 * 3600 * 1000) {
    this.#redis = redis;
    this.#prefix = toKeyPrefix(prefix);
    this.#ttlMs = ttlMs;
  }

  #key(connectionId: string): string {
    return this.#prefix.of(connectionId) + connectionId;
  }

  #indexOf(connectionId: string): string {
    return indexKey(this.#prefix.of(connectionId));
  }

  async park(fence: WriteFence, change: ConnectionChange, event: ConnectionEventInput) {
    const answer: ParkedAnswer = { fence, change, event };
    await this.#write(fence.id, JSON.stringify(answer), this.#ttlMs);
  }

  async #write(connectionId: string, text: string, ttlMs: number): Promise<void> {
    await this.#redis
      .multi()
      .set(this.#key(connectionId), text, "PX", ttlMs)
      .zadd(this.#indexOf(connectionId), Date.now() + ttlMs, connectionId)
      .exec()
      .then(failedCommand);
  }

  async take(connectionId: string): Promise<ParkedAnswer | null> {
    const text = await this.#redis.get(this.#key(connectionId));
    if (text === null) return null;
    const parsed = JSON.parse(text) as ParkedAnswer;
    const change: Record<string, unknown> = { ...parsed.change };
    for (const field of DATE_FIELDS) {
      const value = change[field];
      change[field] = typeof value === "string" ? new Date(value) : null;
    }
    // Parked by a version that did not count unknown answers yet.
    change.consecutiveUnknown ??= 0;
    return { ...parsed, change: change as unknown as ConnectionChange };
  }

  async drop(connectionId: string): Promise<void> {
    await this.#redis
      .multi()
      .del(this.#key(connectionId))
      .zrem(this.#indexOf(connectionId), connectionId)
      .exec()
      .then(failedCommand);
  }

  /** The sealed tokens of every parked answer, by connection id (key rotation counts them). */
  async sealedTokens(): Promise<{ id: string; tokens: string[] }[]> {
    const shards = await Promise.all(this.#prefix.all.map((prefix) => this.#texts(prefix)));
    return shards.flat().map(({ id, text }) => {
      const { change } = JSON.parse(text) as ParkedAnswer;
      return { id, tokens: [change.accessToken, change.refreshToken].filter((t) => t !== null) };
    });
  }

  /** One shard's parked answers as stored; MGET within one slot. */
  async #texts(prefix: string): Promise<{ id: string; text: string }[]> {
    const ids = await this.#redis.zrange(indexKey(prefix), 0, -1);
    if (ids.length === 0) return [];
    const texts = await this.#redis.mget(ids.map((id) => prefix + id));
    return ids.flatMap((id, index) => {
      const text = texts[index];
      return text ? [{ id, text }] : [];
    });
  }

  /**
   * Re-seals one parked answer's tokens (key rotation) where `reseal` changes them. Written
   * only if the answer is still the one read, by one script: an answer a refresh took, dropped
   * or parked again meanwhile is left as that refresh left it (`fenced`), never lost. The
   * answer keeps its expiry.
   */
  async resealTokens(
    connectionId: string,
    reseal: (field: "accessToken" | "refreshToken", sealed: string) => string,
  ): Promise<"resealed" | "current" | "fenced" | "gone"> {
    const key = this.#key(connectionId);
    const text = await this.#redis.get(key);
    if (text === null) return "gone";
    // As stored: dates stay the strings they were written as.
    const answer = JSON.parse(text) as ParkedAnswer;
    const { accessToken, refreshToken } = answer.change;
    const change = {
      ...answer.change,
      accessToken: reseal("accessToken", accessToken),
      refreshToken: refreshToken === null ? null : reseal("refreshToken", refreshToken),
    };
    if (change.accessToken === accessToken && change.refreshToken === refreshToken) {
      return "current";
    }
    const written = await this.#redis.eval(
      REPLACE_IF_UNCHANGED,
      1,
      key,
      text,
      JSON.stringify({ ...answer, change }),
    );
    return written === 1 ? "resealed" : "fenced";
  }

  /** How many answers are parked now; those whose key has expired are forgotten first. */
  async count(): Promise<number> {
    const counts = await Promise.all(
      this.#prefix.all.map(async (prefix) => {
        const replies = await this.#redis
          .multi()
          .zremrangebyscore(indexKey(prefix), "-inf", Date.now())
          .zcard(indexKey(prefix))
          .exec()
          .then(failedCommand);
        return Number(replies.at(-1)?.[1] ?? 0);
      }),
    );
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /**
   * Moves every answer parked here into `to`'s shards, keeping what is left of its week;
   * the sweep does this for a layout left behind by a change of REFRESH_QUEUE_SHARDS, since
   * a refresh looks only in its connection's current shard and would otherwise send a
   * refresh token the provider has already rotated. Copied before it is dropped: a crash
   * in between leaves two copies of one answer, which the next move makes one again.
   */
  async moveTo(to: ParkedAnswers): Promise<number> {
    let moved = 0;
    for (const prefix of this.#prefix.all) {
      for (const { id, text } of await this.#texts(prefix)) {
        const ttlMs = await this.#redis.pttl(prefix + id);
        if (ttlMs > 0) await to.#write(id, text, ttlMs);
        await this.drop(id);
        moved += 1;
      }
    }
    return moved;
  }
}

// Connection ids are uuids: no answer's key can be this one.
const indexKey = (prefix: string) => `${prefix}index`;

/** SET KEYS[1] to ARGV[2], keeping its expiry, if it still holds ARGV[1]. */
const REPLACE_IF_UNCHANGED = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[2], "KEEPTTL")
  return 1
end
return 0`;

type ExecReplies = [error: Error | null, result: unknown][] | null;

/** A transaction's replies, or the first command's error (ioredis resolves with them). */
function failedCommand(replies: ExecReplies): NonNullable<ExecReplies> {
  if (replies === null) throw new Error("parked answers: transaction aborted");
  const failed = replies.find(([error]) => error !== null);
  if (failed?.[0]) throw failed[0];
  return replies;
}
