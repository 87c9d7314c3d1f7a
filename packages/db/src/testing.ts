// Test helpers: a freshly migrated database per test file, cloned from a template that is
// migrated once per change of the migrations folder.
import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { applyMigrations, readMigrations } from "./migrate";

/** Server the tests use; set DATABASE_URL to point them elsewhere. */
export const TEST_SERVER_URL =
  process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/evergreen";

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** URL of database `name` on the test server. */
export function databaseUrl(name: string): string {
  const url = new URL(TEST_SERVER_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl("postgres") });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** An empty database (no migrations), dropped by `drop()`. */
export async function createEmptyDatabase(prefix = "evergreen_test"): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  await withAdmin((admin) => admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`));
  return handle(name);
}

/** A database with every migration applied, dropped by `drop()`. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const template = await ensureTemplate();
  const name = `evergreen_test_${randomBytes(6).toString("hex")}`;
  await withAdmin((admin) =>
    admin.query(
      `CREATE DATABASE ${admin.escapeIdentifier(name)} TEMPLATE ${admin.escapeIdentifier(template)}`,
    ),
  );
  return handle(name);
}

function handle(name: string): TestDatabase {
  return {
    name,
    url: databaseUrl(name),
    drop: () =>
      withAdmin((admin) =>
        admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`),
      ).then(() => undefined),
  };
}

/**
 * The template is named after a digest of the migrations, so a changed migration gets a
 * new template, and parallel test files serialize on an advisory lock while one of them
 * builds it.
 */
async function ensureTemplate(): Promise<string> {
  const migrations = await readMigrations();
  const digest = createHash("sha256")
    .update(migrations.map((m) => `${m.name}:${m.checksum}`).join("\n"))
    .digest("hex")
    .slice(0, 12);
  const template = `evergreen_template_${digest}`;
  return withAdmin(async (admin) => {
    await admin.query("SELECT pg_advisory_lock(hashtext('evergreen test template'))");
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [template]);
    if (!exists.rowCount) {
      const building = `${template}_building`;
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(building)} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(building)}`);
      await applyMigrations(databaseUrl(building), migrations);
      await admin.query(
        `ALTER DATABASE ${admin.escapeIdentifier(building)} RENAME TO ${admin.escapeIdentifier(template)}`,
      );
    }
    return template;
  });
}
