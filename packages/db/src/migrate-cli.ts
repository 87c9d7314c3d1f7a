// `npm run db:migrate`: creates the database if missing, then applies prisma/migrations.
import { applyMigrations, ensureDatabase } from "./migrate";

const url = process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/evergreen";
// As the apps check it (packages/config), without showing the value: it may hold a password.
if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)) {
  console.error("migration failed: DATABASE_URL must be a valid postgresql:// URL");
  process.exit(1);
}
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
