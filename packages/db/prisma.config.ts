import { fileURLToPath } from "node:url";
import { defineConfig } from "prisma/config";

// Prisma 7's CLI refuses to run `generate` unless a schema-engine binary exists, and
// would download one from a host this project must not depend on (see
// docs/adr/0001-prisma-offline.md). `generate` never runs that engine, so any existing
// file satisfies the check.
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= fileURLToPath(import.meta.url);

export default defineConfig({
  schema: "../../prisma/schema.prisma",
});
