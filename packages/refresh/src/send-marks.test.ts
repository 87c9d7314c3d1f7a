import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sentNothing } from "./send-marks";
import { createRefreshHarness, type RefreshHarness } from "./testing";

let h: RefreshHarness;
beforeEach(async () => {
  h = await createRefreshHarness();
});
afterEach(() => h.close());

describe("SendMarks", () => {
  it("shows that a dead holder never sent only by its own claimed mark", async () => {
    const { marks } = h.deps;
    expect(await marks.claim("c1", 3, "a")).toBeNull();
    // a claimed and died before sending: b finds a's own claimed mark.
    const byA = await marks.claim("c1", 3, "b");
    expect(sentNothing(byA, 3, "a")).toBe(true);
    expect(await marks.send("c1", 3, "b")).toBe(true);
    // b sent and died: c finds it sent; c's claim keeps the version "maybe sent", so that if
    // c dies before sending too, d does not read c's mark as proof.
    expect(sentNothing(await marks.claim("c1", 3, "c"), 3, "b")).toBe(false);
    expect(sentNothing(await marks.claim("c1", 3, "d"), 3, "c")).toBe(false);
    expect(await marks.send("c1", 3, "c")).toBe(false);
    expect(await marks.send("c1", 3, "d")).toBe(true);
    // Another version's mark, another holder's, or none says nothing.
    expect(sentNothing(await marks.claim("c1", 4, "e"), 4, "d")).toBe(false);
    expect(sentNothing("4:e:claimed", 4, "a")).toBe(false);
    expect(sentNothing(null, 4, "e")).toBe(false);
    expect(sentNothing("4:e:claimed", 4, null)).toBe(false);
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
    await h.redis.del(`${h.prefix}:sent:c3`);
    expect(await marks.send("c3", 0, "a")).toBe(false);
  });
});
