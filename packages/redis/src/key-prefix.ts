/**
 * The prefix of one kind of key (locks, cooldowns), sharded by a routing key such as a
 * connection id: on a Redis Cluster each shard's keys carry their own hash tag, so they
 * live in that shard's slot beside its queue. A plain string is one shard.
 */
export interface KeyPrefix {
  /** Every shard's prefix, shard 0 first. */
  readonly all: readonly string[];
  /** The prefix of the shard `routingKey` belongs to. */
  of(routingKey: string): string;
}

export function toKeyPrefix(prefix: string | KeyPrefix): KeyPrefix {
  return typeof prefix === "string" ? { all: [prefix], of: () => prefix } : prefix;
}
