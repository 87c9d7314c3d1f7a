// `npm run db:migrate`: creates the database if missing, then applies prisma/migrations.
import { applyMigrations, ensureDatabase } from "./migrate";

const url = process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/evergreen";
const database = new URL(url).pathname.slice(1);

try {
  if (await ensureDatabase(url)) console.log(`created database "${database}"`);
  const applied = await applyMigrations(url);
  console.log(
    applied.length === 0
      ? `database "${database}" is up to date`
      : `applied ${applied.length} migration(s) to "${database}": ${applied.join(", ")}`,
  );
} catch (error) {
  console.error(`migration failed: ${(error as Error).message}`);
  process.exitCode = 1;
}
