-- Validation against the provider and reauth_soon (issue 11): integrations name an RFC 7662
-- endpoint and a validation interval; connections remember the last verdict and which
-- refresh token end was announced. The new enum value is not used in this transaction.

ALTER TYPE "ConnectionEventType" ADD VALUE 'reauth_soon';

-- AlterTable
ALTER TABLE "integrations" ADD COLUMN     "introspectionUrl" TEXT,
ADD COLUMN     "validateIntervalSeconds" INTEGER;

-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "lastValidatedAt" TIMESTAMPTZ(3),
ADD COLUMN     "reauthSoonNotifiedFor" TIMESTAMPTZ(3);

-- CreateIndex
CREATE INDEX "connections_status_lastValidatedAt_idx" ON "connections"("status", "lastValidatedAt");

