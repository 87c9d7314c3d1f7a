import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const require = createRequire(import.meta.url);

export const SCHEMA_FILE = fileURLToPath(new URL("../../../prisma/schema.prisma", import.meta.url));
const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));

export interface SchemaDiffOptions {
  /** Any reachable PostgreSQL server: the engine asks it for its version, nothing else. */
  readonly url: string;
  /** Schema text to reach. @defaultValue the text of prisma/schema.prisma */
  readonly to?: string;
  /** Schema text to start from; an empty database when omitted. */
  readonly from?: string;
}

/**
 * SQL that takes a database from one schema to another, computed by Prisma 6.19's WASM
 * schema engine, which needs no download (docs/adr/0001-prisma-offline.md).
 */
export async function schemaDiffSql({ url, to, from }: SchemaDiffOptions): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "evergreen-schema-"));
  try {
    // Prisma 7 forbids `url` in the datasource block and 6.19 requires it: hand 6.19 copies.
    const toFile = join(dir, "to.prisma");
    await writeFile(toFile, withUrl(to ?? (await readFile(SCHEMA_FILE, "utf8")), url));
    const args = [require.resolve("prisma-migrate/build/index.js"), "migrate", "diff"];
    args.push("--config", "prisma-diff.config.ts");
    if (from === undefined) {
      args.push("--from-empty");
    } else {
      const fromFile = join(dir, "from.prisma");
      await writeFile(fromFile, withUrl(from, url));
      args.push("--from-schema-datamodel", fromFile);
    }
    args.push("--to-schema-datamodel", toFile, "--script");
    const { stdout } = await run(process.execPath, args, {
      cwd: PACKAGE_DIR,
      env: { ...process.env, DATABASE_URL: url, PRISMA_DIFF_SCHEMA: toFile },
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function withUrl(schema: string, url: string): string {
  return schema.replace(/(datasource\s+\w+\s*\{)/, `$1\n  url = ${JSON.stringify(url)}`);
}
