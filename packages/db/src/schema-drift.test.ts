import { readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyMigrations } from "./migrate";
import { SCHEMA_FILE, schemaDiffSql } from "./schema-sql";
import { createEmptyDatabase, type TestDatabase } from "./testing";

/**
 * Everything Prisma models, read from the catalog: columns with types, nullability and
 * defaults; indexes; constraints; enums. Triggers and functions are left out: they are
 * hand-written SQL in migrations that schema.prisma cannot express.
 */
const SNAPSHOT = `
SELECT 'column ' || table_name || '.' || column_name || ' ' || udt_name
       || coalesce('(' || datetime_precision || ')', '') || ' null=' || is_nullable
       || ' default=' || coalesce(column_default, '-') AS item
  FROM information_schema.columns
 WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes
 WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint
 WHERE connamespace = 'public'::regnamespace AND conrelid <> 0
   AND conrelid::regclass::text <> '_prisma_migrations'
UNION ALL
SELECT 'enum ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname
ORDER BY 1`;

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const snapshot = (url: string) =>
  withClient(url, async (client) =>
    (await client.query<{ item: string }>(SNAPSHOT)).rows.map((row) => row.item),
  );

async function databaseFromSql(sql: string): Promise<TestDatabase> {
  const db = await createEmptyDatabase("evergreen_drift");
  await withClient(db.url, (client) => client.query(sql));
  return db;
}

// Each case runs Prisma's WASM schema engine (about 2 s alone; past 5 s on a loaded 2-core
// machine), so the default 5 s per test is too tight.
describe("schema.prisma and prisma/migrations", { timeout: 30_000 }, () => {
  const dbs: TestDatabase[] = [];
  let fromMigrations: string[];

  beforeAll(async () => {
    const migrated = await createEmptyDatabase("evergreen_drift");
    dbs.push(migrated);
    await applyMigrations(migrated.url);
    fromMigrations = await snapshot(migrated.url);
  });
  afterAll(() => Promise.all(dbs.map((db) => db.drop())));

  it("describe the same database (add a migration when this fails: see README)", async () => {
    const db = await databaseFromSql(await schemaDiffSql({ url: dbs[0]?.url ?? "" }));
    dbs.push(db);
    expect(fromMigrations.length).toBeGreaterThan(30);
    expect(await snapshot(db.url)).toEqual(fromMigrations);
  });

  it("differ once the schema gains a field that no migration adds", async () => {
    const schema = await readFile(SCHEMA_FILE, "utf8");
    const drifted = schema.replace(/(model Connection \{\n)/, "$1  driftProbe String?\n");
    expect(drifted).not.toEqual(schema);
    const db = await databaseFromSql(await schemaDiffSql({ url: dbs[0]?.url ?? "", to: drifted }));
    dbs.push(db);
    const drift = await snapshot(db.url);
    expect(drift.filter((item) => !fromMigrations.includes(item))).toEqual([
      "column connections.driftProbe text null=YES default=-",
    ]);
  });
});
