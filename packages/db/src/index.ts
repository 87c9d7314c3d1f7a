export { createPrismaClient, type DatabaseOptions } from "./client";
export * from "./generated/prisma/client";
