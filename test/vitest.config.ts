import { defineConfig } from "vitest/config";

// Cross-process tests: real app processes against the real PostgreSQL and Redis.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
