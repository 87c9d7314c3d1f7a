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
] as const;

/**
 * Where a refresh puts a provider's answer when PostgreSQL cannot take it: a rotating
 * provider has already revoked the refresh token in the row, so the answer (tokens sealed
 * by the key ring, as they would be stored) is the grant's only copy until the next try
 * writes it. Kept a week: longer than any outage worth riding out.
 */
export class ParkedAnswers {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ttlMs: number;

  constructor(redis: Redis, prefix: string, ttlMs = 7 * 24 * 3600 * 1000) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ttlMs = ttlMs;
  }

  async park(fence: WriteFence, change: ConnectionChange, event: ConnectionEventInput) {
    const answer: ParkedAnswer = { fence, change, event };
    await this.#redis.set(this.#prefix + fence.id, JSON.stringify(answer), "PX", this.#ttlMs);
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
    return { ...parsed, change: change as unknown as ConnectionChange };
  }

  async drop(connectionId: string): Promise<void> {
    await this.#redis.del(this.#prefix + connectionId);
  }
}
