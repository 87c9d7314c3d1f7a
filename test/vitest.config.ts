import { defineConfig } from "vitest/config";

// Cross-process tests: real app processes against the real PostgreSQL and Redis.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Process starts and multi-second token lifetimes: generous, so a loaded machine does not
    // turn waiting into failing (each test bounds its own waits below this).
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
