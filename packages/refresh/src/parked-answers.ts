import type { Redis } from "ioredis";
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
 */
export class ParkedAnswers {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #indexKey: string;
  readonly #ttlMs: number;

  constructor(redis: Redis, prefix: string, ttlMs = 7 * 24 * 3600 * 1000) {
    this.#redis = redis;
    this.#prefix = prefix;
    // Connection ids are uuids: no answer's key can be this one.
    this.#indexKey = `${prefix}index`;
    this.#ttlMs = ttlMs;
  }

  async park(fence: WriteFence, change: ConnectionChange, event: ConnectionEventInput) {
    const answer: ParkedAnswer = { fence, change, event };
    await this.#redis
      .multi()
      .set(this.#prefix + fence.id, JSON.stringify(answer), "PX", this.#ttlMs)
      .zadd(this.#indexKey, Date.now() + this.#ttlMs, fence.id)
      .exec()
      .then(failedCommand);
  }

  async take(connectionId: string): Promise<ParkedAnswer | null> {
    const text = await this.#redis.get(this.#prefix + connectionId);
    if (text === null) return null;
    const parsed = JSON.parse(text) as ParkedAnswer;
    const change: Record<string, unknown> = { ...parsed.change };
    for (const field of DATE_FIELDS) {
      const value = change[field];
      change[field] = typeof value === "string" ? new Date(value) : null;
    }
    // Parked by a version that did not count unknown answers yet.
    change.consecutiveUnknown ??= 0;
    // Parked by a version that knew no refresh in doubt: a success ends any doubt.
    change.inDoubtResent ??= false;
    return { ...parsed, change: change as unknown as ConnectionChange };
  }

  async drop(connectionId: string): Promise<void> {
    await this.#redis
      .multi()
      .del(this.#prefix + connectionId)
      .zrem(this.#indexKey, connectionId)
      .exec()
      .then(failedCommand);
  }

  /** The sealed tokens of every parked answer, by connection id (key rotation counts them). */
  async sealedTokens(): Promise<{ id: string; tokens: string[] }[]> {
    const ids = await this.#redis.zrange(this.#indexKey, 0, -1);
    if (ids.length === 0) return [];
    const texts = await this.#redis.mget(ids.map((id) => this.#prefix + id));
    return ids.flatMap((id, index) => {
      const text = texts[index];
      if (!text) return [];
      const { change } = JSON.parse(text) as ParkedAnswer;
      return [{ id, tokens: [change.accessToken, change.refreshToken].filter((t) => t !== null) }];
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
    const key = this.#prefix + connectionId;
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
    const replies = await this.#redis
      .multi()
      .zremrangebyscore(this.#indexKey, "-inf", Date.now())
      .zcard(this.#indexKey)
      .exec()
      .then(failedCommand);
    return Number(replies.at(-1)?.[1] ?? 0);
  }
}

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
