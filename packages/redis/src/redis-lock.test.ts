import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { afterAll, describe, expect, it, vi } from "vitest";
import { createRedis } from "./connection";
import { Cooldown } from "./cooldown";
import { RedisLock } from "./redis-lock";

const redis = createRedis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", "producer");
const prefix = `test-${randomBytes(4).toString("hex")}:`;
afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

describe("RedisLock", () => {
  it("refuses a second holder until the first releases", async () => {
    const lock = new RedisLock(redis, { prefix, ttlMs: 5_000 });
    const first = await lock.acquire("conn-1");
    expect(first).not.toBeNull();
    expect(await lock.acquire("conn-1")).toBeNull();
    expect(await lock.acquire("conn-2")).not.toBeNull();
    expect(await lock.remainingMs("conn-1")).toBeGreaterThan(0);
    await first?.release();
    expect(await lock.remainingMs("conn-1")).toBe(0);
    expect(await lock.acquire("conn-1")).not.toBeNull();
  });

  it("never releases a lock that another holder took over", async () => {
    const lock = new RedisLock(redis, { prefix, ttlMs: 5_000 });
    const stale = await lock.acquire("conn-3");
    await redis.del(`${prefix}conn-3`); // the stale holder's lease ran out
    const current = await lock.acquire("conn-3");
    await stale?.release();
    expect(await stale?.extend()).toBe(false);
    expect(await current?.extend()).toBe(true);
  });

  it("keeps extending a held lease, and signals when it is lost", async () => {
    const lock = new RedisLock(redis, { prefix, ttlMs: 300 });
    const lease = await lock.acquire("conn-4");
    if (!lease) throw new Error("not acquired");
    // Wait for two extension beats (each at ttl/3) by watching the key's TTL rise again.
    let previous = await lock.remainingMs("conn-4");
    let rises = 0;
    while (rises < 2) {
      const now = await lock.remainingMs("conn-4");
      if (now > previous) rises += 1;
      previous = now;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await lease.extend()).toBe(true);
    await redis.set(`${prefix}conn-4`, "someone-else");
    await once(lease.signal, "abort");
    expect(lease.signal.aborted).toBe(true);
    await lease.release();
    expect(await redis.get(`${prefix}conn-4`)).toBe("someone-else");
  });
});

describe("Cooldown", () => {
  it("keeps the longer of two cooldowns", async () => {
    const cooldown = new Cooldown(redis, `${prefix}cooldown:`);
    expect(await cooldown.remainingMs("integration-1")).toBe(0);
    await cooldown.start("integration-1", 60_000);
    await cooldown.start("integration-1", 1_000);
    expect(await cooldown.remainingMs("integration-1")).toBeGreaterThan(50_000);
  });

  it("doubles a cooldown no wait was stated for at each retry refused again, not within a burst", async () => {
    const cooldown = new Cooldown(redis, `${prefix}cooldown:`);
    const over = () =>
      vi.waitFor(async () => expect(await cooldown.remainingMs("unstated")).toBe(0), {
        interval: 20,
      });
    expect(await cooldown.startDoubling("unstated", 100, 300)).toBe(100);
    // More answers of the same burst, inside the cooldown: it stands.
    expect(await cooldown.startDoubling("unstated", 100, 300)).toBeLessThanOrEqual(100);
    await over();
    expect(await cooldown.startDoubling("unstated", 100, 300)).toBe(200);
    await over();
    expect(await cooldown.startDoubling("unstated", 100, 300)).toBe(300);
    await over();
    expect(await cooldown.startDoubling("unstated", 100, 300)).toBe(300);
  });
});

describe("sharded keys", () => {
  const shards = [`${prefix}{s0}:`, `${prefix}{s1}:`];
  const byLastChar = {
    all: shards,
    of: (routingKey: string) => shards[Number(routingKey.at(-1)) % 2] ?? "",
  };

  it("locks a resource under its shard's prefix", async () => {
    const lock = new RedisLock(redis, { prefix: byLastChar, ttlMs: 5_000 });
    const lease = await lock.acquire("conn-1");
    expect(lease?.key).toBe(`${prefix}{s1}:conn-1`);
    expect(await redis.pttl(`${prefix}{s1}:conn-1`)).toBeGreaterThan(0);
    expect(await lock.acquire("conn-1")).toBeNull();
    await lease?.release();
  });

  it("writes a doubling cooldown to every shard too", async () => {
    const cooldown = new Cooldown(redis, byLastChar);
    expect(await cooldown.startDoubling("integration-3", 60_000, 120_000)).toBe(60_000);
    for (const shard of ["0", "1"]) {
      expect(await cooldown.remainingMs("integration-3", `conn-${shard}`)).toBeGreaterThan(50_000);
    }
  });

  it("writes a cooldown to every shard, and each reader sees it in its own", async () => {
    const cooldown = new Cooldown(redis, byLastChar);
    await cooldown.start("integration-2", 60_000);
    expect(await redis.pttl(`${prefix}{s0}:integration-2`)).toBeGreaterThan(50_000);
    expect(await redis.pttl(`${prefix}{s1}:integration-2`)).toBeGreaterThan(50_000);
    // Gone from one shard (a lost key): readers there no longer wait, the others still do.
    await redis.del(`${prefix}{s0}:integration-2`);
    expect(await cooldown.remainingMs("integration-2", "conn-2")).toBe(0);
    expect(await cooldown.remainingMs("integration-2", "conn-3")).toBeGreaterThan(50_000);
  });
});
