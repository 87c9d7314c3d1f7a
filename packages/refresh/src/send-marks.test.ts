import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createRefreshHarness, type RefreshHarness } from "./testing";

let h: RefreshHarness;
beforeEach(async () => {
  h = await createRefreshHarness();
});
afterEach(() => h.close());

describe("SendMarks", () => {
  it("reads a version with no mark, or one marked sent, as maybe sent; one only claimed as not", async () => {
    const { marks } = h.deps;
    expect(await marks.claim("c1", 3, "a")).toBe(true);
    // a claimed and died before sending: b's claim finds a's mark.
    expect(await marks.claim("c1", 3, "b")).toBe(false);
    expect(await marks.send("c1", 3, "b")).toBe(true);
    // b sent and died: c finds it sent; c's claim keeps the version "maybe sent" for the
    // next holder, if c dies before sending too.
    expect(await marks.claim("c1", 3, "c")).toBe(true);
    expect(await marks.claim("c1", 3, "d")).toBe(true);
    expect(await marks.send("c1", 3, "c")).toBe(false);
    expect(await marks.send("c1", 3, "d")).toBe(true);
    // The next version starts afresh; an earlier version's mark says nothing about it.
    expect(await marks.claim("c1", 4, "e")).toBe(true);
    expect(await marks.claim("c1", 4, "f")).toBe(false);
  });

  it("lets only the holder who marked last send", async () => {
    const { marks } = h.deps;
    await marks.claim("c2", 0, "a");
    // b took the version over (a paused past its lease) before a marked its send.
    await marks.claim("c2", 0, "b");
    expect(await marks.send("c2", 0, "a")).toBe(false);
    expect(await marks.send("c2", 0, "b")).toBe(true);
  });

  it("sends nothing once Redis has lost the mark", async () => {
    const { marks } = h.deps;
    await marks.claim("c3", 0, "a");
    await h.redis.flushdb();
    expect(await marks.send("c3", 0, "a")).toBe(false);
  });
});
