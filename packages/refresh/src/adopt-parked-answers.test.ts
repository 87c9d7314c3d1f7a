import { Writable } from "node:stream";
import { createLogger } from "@evergreen/observability";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { adoptParkedAnswers, joinShardLayout } from "./adopt-parked-answers";
import { ParkedAnswers } from "./parked-answers";
import { createRefreshHarness, type RefreshHarness, successfulRefresh } from "./testing";

let h: RefreshHarness;
beforeEach(async () => {
  h = await createRefreshHarness();
});
afterEach(() => h.close());

describe("adoptParkedAnswers", () => {
  it("moves answers parked under 1 and under 2 shards into 3, keeping what is left of their week", async () => {
    const one = h.queues.layout;
    const two = one.withCount(2);
    const three = one.withCount(3);
    // A process that ran with 2 shards was recorded by a sweep; 1 is always looked at.
    await h.redis.sadd(three.registryKey, "2", "3");
    const rows = await Promise.all([h.addConnection(), h.addConnection()]);
    const [first, second] = rows.map(({ connection }) => connection);
    if (!first || !second) throw new Error("no connections");
    const underOne = new ParkedAnswers(h.redis, one.keys("parked"), 60_000);
    const underTwo = new ParkedAnswers(h.redis, two.keys("parked"));
    const parkOn = (parked: ParkedAnswers, row: typeof first) => {
      const { change, event } = successfulRefresh(row);
      return parked.park({ id: row.id, version: row.version }, change, event);
    };
    await parkOn(underOne, first);
    await parkOn(underTwo, second);

    const target = new ParkedAnswers(h.redis, three.keys("parked"));
    expect(await adoptParkedAnswers(h.redis, three)).toBe(2);
    expect(await underOne.count()).toBe(0);
    expect(await underTwo.count()).toBe(0);
    expect(await target.count()).toBe(2);
    expect((await target.take(first.id))?.fence).toEqual({ id: first.id, version: 0 });
    const ttl = await h.redis.pttl(three.keys("parked").of(first.id) + first.id);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // Nothing left to move: a second run is a no-op.
    expect(await adoptParkedAnswers(h.redis, three)).toBe(0);
  });
});

describe("joinShardLayout", () => {
  it("records a process's shard count for the sweep, and warns when another is recorded", async () => {
    const lines: { level: string; msg: string; otherShardCounts?: string[] }[] = [];
    const log = createLogger(
      { name: "test" },
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(JSON.parse(String(chunk)));
          done();
        },
      }),
    );
    const three = h.queues.layout.withCount(3);
    await joinShardLayout(h.redis, three, log);
    expect(await h.redis.smembers(three.registryKey)).toEqual(["3"]);
    expect(lines).toEqual([]);
    // One api started with 2: the scheduler's sweep (at 3) must find its queues.
    await joinShardLayout(h.redis, three.withCount(2), log);
    expect((await h.redis.smembers(three.registryKey)).sort()).toEqual(["2", "3"]);
    expect(lines).toEqual([expect.objectContaining({ level: "warn", otherShardCounts: ["3"] })]);
  });
});
