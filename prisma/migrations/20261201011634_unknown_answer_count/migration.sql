-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "consecutiveUnknown" INTEGER NOT NULL DEFAULT 0;

