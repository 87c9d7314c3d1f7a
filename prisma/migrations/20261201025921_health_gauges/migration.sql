-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "refreshTokenExpiresAt" TIMESTAMPTZ(3);

-- CreateIndex
CREATE INDEX "connections_status_expiresAt_idx" ON "connections"("status", "expiresAt");

-- CreateIndex
CREATE INDEX "connections_status_refreshTokenExpiresAt_idx" ON "connections"("status", "refreshTokenExpiresAt");

