import { defineConfig } from "vitest/config";

// @evergreen/client publishes a build; in this repository its source is read instead (the
// condition tsconfig.base.json sets for tsc too), as apps/api/vitest.config.ts does.
const conditions = ["@evergreen/source", "module", "node", "development|production"];

// Cross-process tests: real app processes against the real PostgreSQL and Redis.
export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: ["test/**/*.test.ts"],
    // Process starts and multi-second token lifetimes: generous, so a loaded machine does not
    // turn waiting into failing (each test bounds its own waits below this).
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
