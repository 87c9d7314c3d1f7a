import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashTagSlot, RefreshLayout } from "./shards";

describe("RefreshLayout", () => {
  it("keeps one shard under the pre-sharding names, so a single Redis upgrades in place", () => {
    const layout = new RefreshLayout(1);
    expect(layout.prefixes).toEqual(["{evergreen}"]);
    expect(layout.keys("lock").of(randomUUID())).toBe("{evergreen}:lock:");
    expect(layout.keys("parked").all).toEqual(["{evergreen}:parked:"]);
  });

  it("computes Redis Cluster's slot of a hash tag (CRC16/XMODEM mod 16384)", () => {
    // Values from `CLUSTER KEYSLOT` on Redis 7 (test/redis-cluster.test.ts checks it live).
    expect(hashTagSlot("evergreen")).toBe(9078);
    expect(hashTagSlot("123456789")).toBe(0x31c3 % 16_384);
  });

  it("gives shard i of n a hash tag in the i-th of n equal slot ranges", () => {
    for (const count of [2, 3, 6, 16]) {
      const layout = new RefreshLayout(count);
      expect(new Set(layout.prefixes).size).toBe(count);
      layout.prefixes.forEach((prefix, shard) => {
        const slot = hashTagSlot(prefix.slice(1, -1));
        expect(slot).toBeGreaterThanOrEqual(Math.floor((shard * 16_384) / count));
        expect(slot).toBeLessThan(Math.floor(((shard + 1) * 16_384) / count));
      });
    }
    // Names carry the count: two layouts never share a queue.
    expect(new RefreshLayout(3).prefixes).not.toContain(new RefreshLayout(2).prefixes[0]);
  });

  it("fixes a connection's shard by its id, spread evenly", () => {
    const layout = new RefreshLayout(4);
    const counts = [0, 0, 0, 0];
    for (let n = 0; n < 4_000; n += 1) {
      const id = randomUUID();
      const shard = layout.shardOf(id);
      expect(new RefreshLayout(4).shardOf(id)).toBe(shard);
      counts[shard] = (counts[shard] ?? 0) + 1;
    }
    for (const count of counts) expect(count).toBeGreaterThan(800);
    // Pinned (FNV-1a of the id): a release that moved these would strand every job.
    expect(layout.shardOf("00000000-0000-4000-8000-000000000000")).toBe(1);
    expect(layout.shardOf("ffffffff-ffff-4fff-bfff-ffffffffffff")).toBe(3);
  });

  it("refuses a count outside 1-256", () => {
    expect(() => new RefreshLayout(0)).toThrow(RangeError);
    expect(() => new RefreshLayout(257)).toThrow(RangeError);
  });
});
