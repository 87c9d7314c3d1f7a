import { describe, expect, it } from "vitest";
import { pooledRandomBytes } from "./random-pool";

describe("pooledRandomBytes", () => {
  it("never hands out the same bytes twice, across refills of the pool", () => {
    // 12-byte IVs: about 341 a pool, so this crosses several refills.
    const views = Array.from({ length: 2_000 }, () => pooledRandomBytes(12));
    const copies = views.map((view) => Buffer.from(view).toString("hex"));
    expect(new Set(copies).size).toBe(views.length);
    // A refill allocates a new pool: views handed out earlier are never overwritten.
    expect(views.map((view) => view.toString("hex"))).toEqual(copies);
  });

  it("serves sizes larger than the pool directly", () => {
    expect(pooledRandomBytes(10_000)).toHaveLength(10_000);
  });
});
