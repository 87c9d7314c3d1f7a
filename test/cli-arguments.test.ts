import { generateEncryptionKey } from "@evergreen/crypto";
import { TEST_REDIS_URL } from "@evergreen/refresh/testing";
import { describe, expect, it } from "vitest";
import { startCommand } from "./support/app-process";

/** A CLI without DATABASE_URL: what fails must fail on its arguments, before any connection. */
async function cli(main: string, args: readonly string[], env: Record<string, string> = {}) {
  const run = startCommand([process.execPath, "--import", "tsx", main, ...args], env);
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

describe("keys CLI exit codes", () => {
  it("exits 3, not 1 (missing keys), when PostgreSQL cannot be reached; no secret printed", async () => {
    const keys = generateEncryptionKey("k1");
    const { code, stderr } = await cli("apps/scheduler/src/keys/main.ts", ["status"], {
      DATABASE_URL: "postgresql://postgres:s3cret-password@127.0.0.1:1/evergreen",
      REDIS_URL: TEST_REDIS_URL,
      ENCRYPTION_KEYS: keys,
    });
    expect(code).toBe(3);
    expect(stderr).toMatch(/^keys: could not run \(/);
    expect(stderr).not.toContain("s3cret-password");
    expect(stderr).not.toContain(keys.split(":").at(-1));
  });

  it.each([
    ["apps/scheduler/src/keys/main.ts", ["status"]],
    ["apps/import/src/main.ts", ["--integration", "x", "package.json"]],
  ])("%s exits 3, not 1, on invalid configuration", async (main, args) => {
    // Exit 1 means missing keys (keys) or refused lines (import) to the scripts that run them.
    const { code, stderr } = await cli(main, args, {
      NODE_ENV: "production",
      DATABASE_URL: "postgresql://postgres@127.0.0.1:1/evergreen",
      ENCRYPTION_KEYS: "k1:not-32-bytes",
    });
    expect(code).toBe(3);
    expect(stderr).toMatch(/invalid configuration, not starting:\n {2}- ENCRYPTION_KEYS: /);
  });

  it("exits 3 naming AUDIT_LOG when rotate cannot open its audit file", async () => {
    const { code, stderr } = await cli("apps/scheduler/src/keys/main.ts", ["rotate"], {
      DATABASE_URL: "postgresql://postgres@127.0.0.1:1/evergreen",
      REDIS_URL: TEST_REDIS_URL,
      ENCRYPTION_KEYS: generateEncryptionKey("k1"),
      AUDIT_LOG: "/nonexistent-dir/audit.log",
    });
    expect(code).toBe(3);
    expect(stderr).toContain("AUDIT_LOG: cannot open /nonexistent-dir/audit.log for appending");
  });
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

  it("exits 2 with the usage on an unknown option, and 0 with it on --help", async () => {
    const unknown = await cli("apps/import/src/main.ts", ["--integraton", "x", "a.jsonl"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^import: Unknown option '--integraton'/);
    expect(unknown.stderr).toContain("usage: npm run import");
    const run = startCommand(
      [process.execPath, "--import", "tsx", "apps/import/src/main.ts", "--help"],
      {},
    );
    expect(await run.exited).toBe(0);
    expect(run.otherStdout.join("\n")).toContain("usage: npm run import");
  });

  it("exits 3, not 1 (lines refused), when PostgreSQL cannot be reached; no secret printed", async () => {
    const { code, stderr } = await cli(
      "apps/import/src/main.ts",
      ["--integration", "x", "package.json"],
      {
        DATABASE_URL: "postgresql://postgres:s3cret-password@127.0.0.1:1/evergreen",
        REDIS_URL: TEST_REDIS_URL,
        ENCRYPTION_KEYS: generateEncryptionKey("k1"),
      },
    );
    expect(code).toBe(3);
    expect(stderr).toMatch(/^import: could not run \(/);
    expect(stderr).not.toContain("s3cret-password");
  });
});

describe("keygen CLI", () => {
  it("refuses a bad key id with its rule and exit 2, no stack trace", async () => {
    const { code, stderr } = await cli("packages/crypto/src/keygen.ts", ["bad id!"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^keygen: key id must be 1-32 of \[A-Za-z0-9_-\]\nusage: /);
    expect(stderr).not.toMatch(/ at /);
  });
});
