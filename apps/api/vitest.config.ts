import { defineConfig } from "vitest/config";

// @evergreen/client publishes a build; in this repository its source is read instead
// (the condition tsconfig.base.json sets for tsc too), so its tests need no build first.
const conditions = ["@evergreen/source", "module", "node", "development|production"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
});
