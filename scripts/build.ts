// `npm run build`: bundles each app and the operator CLIs (migrate, import, keys) into one
// ESM file each under dist/, the JavaScript the image runs (ADR 0012). `npm start` and the
// tests still run the TypeScript sources under tsx; this is for the image only.
import { rm } from "node:fs/promises";
import { build } from "esbuild";

await rm("dist", { recursive: true, force: true });
await build({
  entryPoints: {
    api: "apps/api/src/main.ts",
    scheduler: "apps/scheduler/src/main.ts",
    worker: "apps/worker/src/main.ts",
    migrate: "packages/db/src/migrate-cli.ts",
    // Operators run these in the container: `node dist/import.mjs`, `node dist/keys.mjs status`.
    import: "apps/import/src/main.ts",
    keys: "apps/scheduler/src/keys/main.ts",
  },
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  // Shared code (Prisma's client and its WASM query compiler, fastify, bullmq) goes into
  // chunks the entries import, instead of a copy in each: 14 MB of dist/, not 35.
  splitting: true,
  platform: "node",
  format: "esm",
  // The image runs Node 24; node20 keeps the bundles runnable on this machine's Node too.
  target: "node20",
  // Error and class names appear in logs and in `name` checks; bundling must not rename them.
  keepNames: true,
  sourcemap: "linked",
  // Stack traces name the .ts file and line; the sources themselves stay out of the image.
  sourcesContent: false,
  // Some CommonJS dependencies call require() for Node built-ins, which an ES module lacks.
  banner: {
    js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);',
  },
  // pg loads its optional native binding only when asked for pg.native, which we never do.
  external: ["pg-native"],
  logLevel: "info",
});
