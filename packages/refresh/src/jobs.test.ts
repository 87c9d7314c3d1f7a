import { describe, expect, it } from "vitest";
import { parseRefreshJobId, refreshJobId } from "./jobs";

describe("refresh job ids", () => {
  it("parse back to the payload they were made from", () => {
    const payload = { connectionId: "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80", version: 12 };
    expect(parseRefreshJobId(refreshJobId(payload))).toEqual(payload);
  });

  it.each([
    "1",
    "repeat:abc",
    "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80",
    "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80.01",
    "7D3F4A52-0C1E-4A7B-9F0E-2B8C5D6E7F80.1",
  ])("refuse %j, which they never make", (id) => expect(parseRefreshJobId(id)).toBeUndefined());
});
