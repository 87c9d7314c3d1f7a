import { describe, expect, it } from "vitest";
import { poisonedKeyPath } from "./poisoned-keys";

describe("poisonedKeyPath", () => {
  it("names a __proto__ key, or a constructor holding a prototype, by its path", () => {
    expect(poisonedKeyPath(JSON.parse('{"__proto__":{"admin":true}}'))).toBe("__proto__");
    expect(poisonedKeyPath(JSON.parse('{"m":[{"constructor":{"prototype":{}}}]}'))).toBe(
      "m.0.constructor",
    );
    expect(poisonedKeyPath({ constructor: "a plain value", m: { prototype: 1 } })).toBeNull();
    expect(poisonedKeyPath("__proto__")).toBeNull();
  });

  it("walks a value nested far deeper than the call stack goes", () => {
    const depth = 200_000;
    const deep = JSON.parse(`${"[".repeat(depth)}{"__proto__":1}${"]".repeat(depth)}`);
    expect(poisonedKeyPath(deep)).toMatch(/^(0\.){200000}__proto__$/);
  });
});
