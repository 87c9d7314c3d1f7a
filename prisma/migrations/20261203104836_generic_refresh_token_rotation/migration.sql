-- AlterTable
ALTER TABLE "integrations" ADD COLUMN     "refreshTokenRotation" TEXT;

