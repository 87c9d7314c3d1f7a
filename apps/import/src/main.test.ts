import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

/** The CLI in its own process, without DATABASE_URL: what fails must fail on the arguments. */
async function runImport(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await promisify(execFile)(process.execPath, ["--import", "tsx", MAIN, ...args], {
      env: { PATH: process.env.PATH },
    });
    return { code: 0, stderr: "" };
  } catch (error) {
    const { code, stderr } = error as { code: number; stderr: string };
    return { code, stderr };
  }
}

describe("import CLI arguments", () => {
  // --batch-size 1e9 held the whole file in memory (a batch is stored once full).
  it.each([
    ["--batch-size", "1e9"],
    ["--concurrency", "100000"],
    ["--spread-seconds", "1.5"],
  ])(
    "refuses %s %s with exit 2, before reading the file or the database",
    async (flag, value) => {
      const { code, stderr } = await runImport("--integration", "x", flag, value, "missing.jsonl");
      expect(code).toBe(2);
      expect(stderr).toMatch(new RegExp(`^import: ${flag} must be an integer from 1 to \\d+\\n$`));
    },
    30_000,
  );
});
