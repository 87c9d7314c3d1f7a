-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "claimExpiresAt" TIMESTAMPTZ(3),
ADD COLUMN     "claimVersion" INTEGER;

