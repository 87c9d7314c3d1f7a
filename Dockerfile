# One image for every app; docker-compose.yml picks the app with `command`.
FROM node:20.19-bookworm-slim
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
CMD ["npm", "run", "start:api"]
