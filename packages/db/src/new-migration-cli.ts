// `npm run db:migration -- <name>`: writes the SQL that takes the committed schema
// (git HEAD) to the working copy of prisma/schema.prisma as a new migration folder.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { MIGRATIONS_DIR } from "./migrate";
import { SCHEMA_FILE, schemaDiffSql } from "./schema-sql";

const name = process.argv[2] ?? "";
if (!/^[a-z0-9_]{1,60}$/.test(name)) {
  console.error("usage: npm run db:migration -- <name>   (lower case, digits and _)");
  process.exit(2);
}

const root = join(MIGRATIONS_DIR, "..", "..");
const committed = execFileSync("git", ["show", `HEAD:${relative(root, SCHEMA_FILE)}`], {
  cwd: root,
  encoding: "utf8",
});
const sql = await schemaDiffSql({
  url: process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/postgres",
  from: committed,
  to: readFileSync(SCHEMA_FILE, "utf8"),
});
if (/This is an empty migration/.test(sql)) {
  console.log("schema.prisma has no change against HEAD: nothing to write");
} else {
  const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
  const folder = join(MIGRATIONS_DIR, `${stamp}_${name}`);
  mkdirSync(folder);
  writeFileSync(join(folder, "migration.sql"), sql);
  console.log(`wrote ${relative(root, folder)}/migration.sql: review it, then commit it`);
}
