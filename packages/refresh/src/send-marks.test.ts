import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createRefreshHarness, type RefreshHarness } from "./testing";

let h: RefreshHarness;
beforeEach(async () => {
  h = await createRefreshHarness();
});
afterEach(() => h.close());

describe("SendMarks", () => {
  it("answers the mark each claim replaces", async () => {
    const { marks } = h.deps;
    expect(await marks.claim("c1", 3, "a")).toBeNull();
    expect(await marks.claim("c1", 3, "b")).toBe("3:a:claimed");
    expect(await marks.send("c1", 3, "b")).toBe(true);
    expect(await marks.claim("c1", 3, "c")).toBe("3:b:sent");
  });

  it("lets only the holder who marked last send", async () => {
    const { marks } = h.deps;
    await marks.claim("c2", 0, "a");
    // b took the version over (a paused past its lease) before a marked its send.
    await marks.claim("c2", 0, "b");
    expect(await marks.send("c2", 0, "a")).toBe(false);
    expect(await marks.send("c2", 0, "b")).toBe(true);
    // Marked sent once: a second send under the same mark is refused.
    expect(await marks.send("c2", 0, "b")).toBe(false);
  });

  it("withdraws only its own sent mark, back to claimed", async () => {
    const { marks } = h.deps;
    await marks.claim("c4", 1, "a");
    expect(await marks.send("c4", 1, "a")).toBe(true);
    await marks.withdraw("c4", 1, "a");
    expect(await marks.claim("c4", 1, "b")).toBe("1:a:claimed");
    // b's claimed mark is not a's to move.
    await marks.withdraw("c4", 1, "a");
    expect(await marks.claim("c4", 1, "c")).toBe("1:b:claimed");
  });

  it("sends nothing once Redis has lost the mark", async () => {
    const { marks } = h.deps;
    await marks.claim("c3", 0, "a");
    await h.redis.del(`${h.prefix}:sent:c3`);
    expect(await marks.send("c3", 0, "a")).toBe(false);
  });
});
