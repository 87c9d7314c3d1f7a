// Config for the Prisma 6.19 CLI (npm alias `prisma-migrate`), used only by
// src/schema-sql.ts to compute SQL from schema files with `migrate diff` on its bundled
// WASM schema engine. Why two Prisma CLIs: docs/adr/0001-prisma-offline.md.
import { PrismaPg } from "@prisma/adapter-pg";
import { defineConfig } from "prisma-migrate/config";

// Without this, 6.19 downloads a query engine it would never use here.
process.env.PRISMA_CLIENT_ENGINE_TYPE ??= "client";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  // The engine only asks the server for its version; `allowExitOnIdle` lets the CLI exit.
  adapter: async () =>
    new PrismaPg({ connectionString: process.env.DATABASE_URL, allowExitOnIdle: true }),
  // The CLI reads generator settings from some schema before any command; without one it
  // falls back to downloading engines. schema-sql.ts passes the target schema's copy.
  schema: process.env.PRISMA_DIFF_SCHEMA,
});
