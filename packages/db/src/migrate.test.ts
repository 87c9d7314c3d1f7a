import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import {
  applyMigrations,
  MIGRATIONS_DIR,
  MigrationError,
  readMigrations,
  schemaProblem,
} from "./migrate";
import { createEmptyDatabase, type TestDatabase } from "./testing";

const databases: TestDatabase[] = [];
afterEach(async () => {
  await Promise.all(databases.splice(0).map((db) => db.drop()));
});

async function emptyDatabase(): Promise<TestDatabase> {
  const db = await createEmptyDatabase();
  databases.push(db);
  return db;
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("applyMigrations", () => {
  it("applies each migration once and records it as prisma migrate deploy does", async () => {
    const db = await emptyDatabase();
    const local = await readMigrations();
    expect(local.length).toBeGreaterThan(0);

    expect(await applyMigrations(db.url)).toEqual(local.map((m) => m.name));
    expect(await applyMigrations(db.url)).toEqual([]);

    const rows = await query<{
      migration_name: string;
      checksum: string;
      finished_at: Date | null;
      applied_steps_count: number;
    }>(db.url, 'SELECT * FROM "_prisma_migrations" ORDER BY migration_name');
    const first = local[0];
    if (!first) throw new Error("no migration");
    const file = await readFile(join(MIGRATIONS_DIR, first.name, "migration.sql"));
    expect(rows[0]).toMatchObject({
      migration_name: first.name,
      checksum: createHash("sha256").update(file).digest("hex"),
      applied_steps_count: 1,
    });
    expect(rows.every((row) => row.finished_at instanceof Date)).toBe(true);
  });

  it("refuses a migration edited after it was applied", async () => {
    const db = await emptyDatabase();
    const local = await readMigrations();
    await applyMigrations(db.url, local);
    const edited = local.map((m, i) => (i === 0 ? { ...m, checksum: "0".repeat(64) } : m));
    await expect(applyMigrations(db.url, edited)).rejects.toThrow(/edited after it was applied/);
  });

  it("records a failed migration and refuses to go on until it is resolved", async () => {
    const db = await emptyDatabase();
    const broken = {
      name: "20990101000000_broken",
      sql: "CREATE TABLE oops (",
      checksum: "f".repeat(64),
    };
    await expect(applyMigrations(db.url, [broken])).rejects.toBeInstanceOf(MigrationError);
    const [row] = await query<{ finished_at: Date | null; logs: string | null }>(
      db.url,
      `SELECT finished_at, logs FROM "_prisma_migrations" WHERE migration_name = '${broken.name}'`,
    );
    expect(row?.finished_at).toBeNull();
    expect(row?.logs).toMatch(/syntax error/);
    await expect(applyMigrations(db.url, [])).rejects.toThrow(/failed earlier/);
  });
});

describe("schemaProblem", () => {
  it("names migrations not applied yet, and nothing once they are", async () => {
    const db = await emptyDatabase();
    const local = await readMigrations();
    const last = local.at(-1);
    await applyMigrations(db.url, local.slice(0, -1));
    expect(await schemaProblem(db.url)).toBe(
      `database "${db.name}" lacks 1 of ${local.length} migrations (the first: ${last?.name}): run \`npm run db:migrate\` (in the image: \`node dist/migrate.mjs\`)`,
    );
    await applyMigrations(db.url);
    expect(await schemaProblem(db.url)).toBeNull();
  });

  it("cannot tell, and says nothing, when PostgreSQL does not answer", async () => {
    expect(await schemaProblem("postgresql://postgres@127.0.0.1:1/evergreen", 1_000)).toBeNull();
  });
});
