import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

/** The CLI in its own process, without DATABASE_URL: what fails must fail on the arguments. */
async function keys(...args: string[]): Promise<{ code: number; stderr: string }> {
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

describe("keys CLI arguments", () => {
  it.each(["1.5", "Infinity", "1e21", "0"])(
    "refuses --batch-size %s with the usage and exit 2, before touching the database",
    async (size) => {
      const { code, stderr } = await keys("rotate", "--batch-size", size);
      expect(code).toBe(2);
      expect(stderr).toContain("usage: keys status");
    },
    30_000,
  );
});
