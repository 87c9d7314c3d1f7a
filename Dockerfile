# One image for every app; docker-compose.yml picks the app with `command`.
# Two stages (ADR 0012): the build stage installs everything and bundles each app with
# esbuild; the runtime stage holds those bundles and the migrations, and no node_modules
# at all: no tsx, TypeScript, Biome, vitest or Prisma CLI.
FROM node:24-bookworm-slim AS build
# Builds behind a TLS-intercepting proxy pass its CA bundle here; unset, it changes nothing.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /app
COPY package.json package-lock.json turbo.json tsconfig.base.json ./
COPY prisma ./prisma
COPY packages ./packages
COPY apps ./apps
COPY scripts ./scripts
# `npm install`, not `npm ci`: see .ci/run (npm/cli#9846). The lockfile still pins versions.
# Its postinstall generates the Prisma client the bundles include.
RUN npm install --no-audit --no-fund && npm run build

# Node 24: Node 20 reached end of life in April 2026.
FROM node:24-bookworm-slim
# What evergreen_build_info{version} reports, e.g. --build-arg EVERGREEN_VERSION=$(git describe).
ARG EVERGREEN_VERSION=dev
# Source maps turn a stack trace's bundle lines back into .ts files and lines.
ENV NODE_ENV=production EVERGREEN_VERSION=$EVERGREEN_VERSION NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=build /app/dist ./dist
# The migration CLI (dist/migrate.mjs) finds these as the nearest prisma/migrations above it;
# each app, at start, checks its database has them all.
COPY prisma/migrations ./prisma/migrations
USER node
# Node itself is the command, never `npm run`: npm → sh → node let SIGTERM die at the shell
# (dash does not exec a lone command), so `docker stop` cut refreshes in flight and their
# rotated tokens were lost. Node handles SIGTERM/SIGINT itself (handleShutdown) and, running
# a bundle, spawns no child to reap, so it is PID 1.
CMD ["node", "dist/api.mjs"]
