import { describe, expect, it } from "vitest";
import { type FileLine, readLines } from "./read-lines";

async function lines(chunks: readonly (string | number[])[], maxBytes = 8): Promise<FileLine[]> {
  async function* input() {
    for (const chunk of chunks) yield Buffer.from(chunk as string);
  }
  const out: FileLine[] = [];
  for await (const line of readLines(input(), maxBytes)) out.push(line);
  return out;
}

describe("readLines", () => {
  it("splits across chunks, drops a \\r before \\n, and keeps a last line without one", async () => {
    expect(await lines(["ab", "c\r\n\nd", "e\nf"])).toEqual([
      { text: "abc" },
      { text: "" },
      { text: "de" },
      { text: "f" },
    ]);
  });

  it("skips a line longer than the bound to its end, holding no more of it", async () => {
    expect(await lines(["12345", "6789", "0123\nok\n", "x".repeat(20)])).toEqual([
      { error: "longer than 8 bytes" },
      { text: "ok" },
      { error: "longer than 8 bytes" },
    ]);
  });

  it("refuses bytes that are not UTF-8, even split across chunks; takes UTF-8 that is", async () => {
    expect(await lines([[0x61, 0xe9, 0x0a], [0xc3], [0xa9, 0x0a]])).toEqual([
      { error: "not valid UTF-8" },
      { text: "é" },
    ]);
  });
});
