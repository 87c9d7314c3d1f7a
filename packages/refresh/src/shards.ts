import type { KeyPrefix } from "@evergreen/redis";

/** REFRESH_QUEUE_SHARDS at most this: a sweep walks every shard, and a worker consumes each. */
export const MAX_REFRESH_QUEUE_SHARDS = 256;

/** Redis Cluster's hash slots. */
const SLOTS = 16_384;

/** CRC16/XMODEM, the checksum Redis Cluster maps keys to slots with (its spec, "Keys distribution model"). */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

/** The slot of every key whose hash tag is `{tag}`. */
export function hashTagSlot(tag: string): number {
  return crc16(tag) % SLOTS;
}

/** FNV-1a, 32 bits: stable across processes, versions and languages, unlike any runtime hash. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * How the refresh queue is split into `count` hash-tagged shards, and where a connection
 * lives: its queue, lock, cooldown copy and parked answer share its shard's hash tag, so
 * all of a refresh's keys sit in one Redis Cluster slot (docs/adr/0017).
 *
 * One shard is `{<base>}`, the single queue's name before sharding, so a single Redis
 * upgrades without moving a key. With more, shard `i` of `n` is `{<base>-n.i}` (a suffix
 * `.k` added when needed) chosen so that its slot falls in the i-th of n equal slot ranges:
 * a cluster whose primaries split the slots evenly gets the shards spread over all of them
 * (plain `{evergreen-1}`, `{evergreen-2}`, `{evergreen-3}` all hash to one primary of three).
 * The count is in the name, so two layouts never share a queue: changing it is a migration
 * the sweep carries out (reconcile.ts).
 */
export class RefreshLayout {
  readonly count: number;
  /** Each shard's hash-tagged prefix, e.g. `{evergreen}`. */
  readonly prefixes: readonly string[];
  readonly #base: string;

  /** @param base the hash tag's name: `evergreen`, or a test's own. */
  constructor(count: number, base = "evergreen") {
    if (!Number.isInteger(count) || count < 1 || count > MAX_REFRESH_QUEUE_SHARDS) {
      throw new RangeError(`shard count must be 1-${MAX_REFRESH_QUEUE_SHARDS}, got ${count}`);
    }
    if (/[{}]/.test(base)) throw new RangeError("the base name carries no braces");
    this.count = count;
    this.#base = base;
    this.prefixes =
      count === 1
        ? [`{${base}}`]
        : Array.from({ length: count }, (_, shard) => `{${spreadTag(base, shard, count)}}`);
  }

  /** The same base with another shard count (a layout to migrate from). */
  withCount(count: number): RefreshLayout {
    return new RefreshLayout(count, this.#base);
  }

  /** The shard a connection belongs to, fixed by its id. */
  shardOf(connectionId: string): number {
    return this.count === 1 ? 0 : fnv1a(connectionId) % this.count;
  }

  prefixOf(connectionId: string): string {
    return this.prefixes[this.shardOf(connectionId)] ?? "";
  }

  /** The prefix of one kind of key, per shard: `{evergreen}:lock:` and the like. */
  keys(kind: "lock" | "cooldown" | "parked" | "sent"): KeyPrefix {
    const all = this.prefixes.map((prefix) => `${prefix}:${kind}:`);
    return { all, of: (connectionId) => all[this.shardOf(connectionId)] ?? "" };
  }

  /**
   * Where the shard counts ever used are listed, for the sweep to find queues left behind
   * by a change of count. Beside shard 0 of one shard, outside any queue's keys.
   */
  get registryKey(): string {
    return `{${this.#base}}:shard-layouts`;
  }
}

function spreadTag(base: string, shard: number, count: number): string {
  const low = Math.floor((shard * SLOTS) / count);
  const high = Math.floor(((shard + 1) * SLOTS) / count);
  for (let salt = 0; ; salt += 1) {
    const tag = salt === 0 ? `${base}-${count}.${shard}` : `${base}-${count}.${shard}.${salt}`;
    const slot = hashTagSlot(tag);
    if (slot >= low && slot < high) return tag;
  }
}
