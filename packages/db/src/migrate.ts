import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

/**
 * The repository's `prisma/migrations` folder: the nearest one above this module, which is
 * packages/db/src under tsx and dist/ when bundled into the image (ADR 0012).
 */
export const MIGRATIONS_DIR = nearestMigrationsDir(dirname(fileURLToPath(import.meta.url)));

function nearestMigrationsDir(from: string): string {
  for (let dir = from; dirname(dir) !== dir; dir = dirname(dir)) {
    const candidate = join(dir, "prisma", "migrations");
    if (existsSync(candidate)) return candidate;
  }
  // None anywhere above: readMigrations then fails naming where it looked first.
  return join(from, "prisma", "migrations");
}

/**
 * The advisory lock key `prisma migrate deploy` takes, so this runner and Prisma's own
 * never apply migrations to one database at the same time.
 */
const PRISMA_MIGRATE_LOCK = 72707369;

/** Prisma's bookkeeping table, column for column, so `prisma migrate deploy/status` agree. */
const CREATE_BOOKKEEPING = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export class MigrationError extends Error {
  override name = "MigrationError";
  constructor(
    readonly migration: string,
    message: string,
  ) {
    super(`${migration}: ${message}`);
  }
}

export interface Migration {
  readonly name: string;
  readonly sql: string;
  /** SHA-256 of the file, hex: the checksum Prisma records. */
  readonly checksum: string;
}

/** Migration names in the order Prisma applies them: folder names sorted. */
async function migrationNames(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

/** Migrations in the order Prisma applies them. */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  return Promise.all(
    (await migrationNames(dir)).map(async (name) => {
      const sql = await readFile(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

/** Creates the database named in `url` when it does not exist yet. Returns true if created. */
export async function ensureDatabase(url: string): Promise<boolean> {
  const name = databaseName(url);
  if (!name) throw new Error("DATABASE_URL names no database");
  const maintenance = new URL(url);
  maintenance.pathname = "/postgres";
  const client = new pg.Client({ connectionString: maintenance.toString() });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    } catch (error) {
      // Another process created it between our check and our CREATE.
      if ((error as { code?: string }).code === "42P04") return false;
      throw error;
    }
    return true;
  } finally {
    await client.end();
  }
}

/**
 * Applies pending migrations exactly as `prisma migrate deploy` does, recording each in
 * `_prisma_migrations`: a migration runs as one implicit transaction, a failure is
 * recorded with its logs and blocks later runs until resolved. Returns the names applied.
 */
export async function applyMigrations(
  url: string,
  migrations?: readonly Migration[],
): Promise<string[]> {
  const local = migrations ?? (await readMigrations());
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Like Prisma, give up after 10 s instead of hanging behind a stuck migrator.
    await client.query("SET lock_timeout = '10s'");
    await client.query("SELECT pg_advisory_lock($1)", [PRISMA_MIGRATE_LOCK]);
    await client.query("SET lock_timeout = 0");
    await client.query(CREATE_BOOKKEEPING);
    const { rows } = await client.query<{
      migration_name: string;
      checksum: string;
      finished_at: Date | null;
      rolled_back_at: Date | null;
    }>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at',
    );
    const failed = rows.find((row) => row.finished_at === null && row.rolled_back_at === null);
    if (failed) {
      throw new MigrationError(
        failed.migration_name,
        "failed earlier; fix it, then `prisma migrate resolve` it before migrating again",
      );
    }
    const applied = new Map(
      rows.filter((row) => row.finished_at !== null).map((row) => [row.migration_name, row]),
    );
    for (const migration of local) {
      const previous = applied.get(migration.name);
      if (previous && previous.checksum !== migration.checksum) {
        throw new MigrationError(migration.name, "was edited after it was applied");
      }
    }
    const done: string[] = [];
    for (const migration of local.filter((m) => !applied.has(m.name))) {
      const id = randomUUID();
      await client.query(
        'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ($1, $2, $3, now())',
        [id, migration.checksum, migration.name],
      );
      try {
        await client.query(migration.sql);
      } catch (error) {
        // A script with its own BEGIN leaves the session in an aborted transaction.
        await client.query("ROLLBACK").catch(() => undefined);
        await client.query('UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1', [
          id,
          (error as Error).message,
        ]);
        throw new MigrationError(migration.name, (error as Error).message);
      }
      await client.query(
        'UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1',
        [id],
      );
      done.push(migration.name);
    }
    return done;
  } finally {
    await client.end();
  }
}

/** The database a `DATABASE_URL` names. */
function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/** How to apply migrations, from a checkout or in the image (docker-compose.yml's `migrate`). */
const MIGRATE = "`npm run db:migrate` (in the image: `node dist/migrate.mjs`)";

/**
 * What keeps an app from working on the database at `url`, if it can tell: the database
 * missing, or migrations not applied (every route and refresh would fail on a missing table
 * or column). Null when the schema is current, or when it cannot tell (PostgreSQL down: the
 * app starts anyway and readiness reports it; the migrations folder not found). Opens one
 * connection of its own, given up on after `timeoutMs`.
 */
export async function schemaProblem(url: string, timeoutMs = 5_000): Promise<string | null> {
  const name = databaseName(url);
  const local = await migrationNames(MIGRATIONS_DIR).catch(() => null);
  if (local === null) return null;
  // query_timeout is safe here: the connection is closed right after, never reused.
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (error) {
    if ((error as { code?: string }).code !== "3D000") return null;
    return `database "${name}" does not exist: run ${MIGRATE}, which creates it and applies the migrations`;
  }
  try {
    const { rows } = await client.query<{ migration_name: string }>(
      'SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL',
    );
    const applied = new Set(rows.map((row) => row.migration_name));
    const pending = local.filter((migration) => !applied.has(migration));
    if (pending.length === 0) return null;
    return `database "${name}" lacks ${pending.length} of ${local.length} migrations (the first: ${pending[0]}): run ${MIGRATE}`;
  } catch (error) {
    // No bookkeeping table: nothing was ever migrated here.
    if ((error as { code?: string }).code !== "42P01") return null;
    return `database "${name}" has no Evergreen schema: run ${MIGRATE}`;
  } finally {
    // Never waits on a PostgreSQL that stopped answering after the connect.
    client.connection.stream.destroy();
  }
}

/**
 * Exits 1 with `schemaProblem`'s one line when it finds one: started anyway, the app would
 * answer 500 to every request (its tables missing) while reporting itself ready.
 */
export async function exitIfSchemaNotCurrent(
  url: string,
  log: { fatal(message: string): void },
): Promise<void> {
  const problem = await schemaProblem(url);
  if (problem === null) return;
  log.fatal(problem);
  process.exit(1);
}
