# One image for every app; docker-compose.yml picks the app with `command`.
FROM node:20.19-bookworm-slim
# Builds behind a TLS-intercepting proxy pass its CA bundle here; unset, it changes nothing.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json turbo.json tsconfig.base.json ./
COPY prisma ./prisma
COPY packages ./packages
COPY apps ./apps
# Dev dependencies stay: tsx runs the TypeScript sources and the Prisma CLIs migrate.
# `npm install`, not `npm ci`: see .ci/run (npm/cli#9846). The lockfile still pins versions.
RUN npm install --include=dev --no-audit --no-fund && npm cache clean --force
USER node
# Node itself is the command, never `npm run`: npm → sh → node let SIGTERM die at the shell
# (dash does not exec a lone command), so `docker stop` cut refreshes in flight and their
# rotated tokens were lost. tsx runs as a loader inside this one process. Node handles
# SIGTERM/SIGINT itself (handleShutdown), so it can be PID 1; compose adds an init anyway.
CMD ["node", "--import", "tsx", "apps/api/src/main.ts"]
