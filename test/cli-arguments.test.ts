import { describe, expect, it } from "vitest";
import { startCommand } from "./support/app-process";

/** A CLI without DATABASE_URL: what fails must fail on its arguments, before any connection. */
async function cli(main: string, args: readonly string[]) {
  const run = startCommand([process.execPath, "--import", "tsx", main, ...args], {});
  return { code: await run.exited, stderr: run.stderr() };
}

describe("keys CLI arguments", () => {
  // They reached the rotation's SELECT ... LIMIT, an SQL error after connecting.
  it.each(["1.5", "Infinity", "1e21", "0"])(
    "refuses --batch-size %s with the usage and exit 2",
    async (size) => {
      const { code, stderr } = await cli("apps/scheduler/src/keys/main.ts", [
        "rotate",
        "--batch-size",
        size,
      ]);
      expect(code).toBe(2);
      expect(stderr).toContain("usage: keys status");
    },
  );
});

describe("import CLI arguments", () => {
  // --batch-size 1e9 held the whole file in memory (a batch is stored once full).
  it.each([
    ["--batch-size", "1e9"],
    ["--concurrency", "100000"],
    ["--spread-seconds", "1.5"],
  ])("refuses %s %s with exit 2, before reading the file", async (flag, value) => {
    const { code, stderr } = await cli("apps/import/src/main.ts", [
      "--integration",
      "x",
      flag,
      value,
      "missing.jsonl",
    ]);
    expect(code).toBe(2);
    expect(stderr).toMatch(new RegExp(`^import: ${flag} must be an integer from 1 to \\d+\\n$`));
  });
});
