-- Revoke on delete: the outcome events, the generic integration's revocation URL, and the
-- pending revocations the delete writes in its transaction (the job carries only the id).

-- AlterEnum
ALTER TYPE "ConnectionEventType" ADD VALUE 'revoked';
ALTER TYPE "ConnectionEventType" ADD VALUE 'revocation_failed';

-- AlterTable
ALTER TABLE "integrations" ADD COLUMN     "revocationUrl" TEXT;

-- CreateTable
CREATE TABLE "pending_revocations" (
    "id" UUID NOT NULL,
    "connectionId" UUID NOT NULL,
    "integrationId" UUID NOT NULL,
    "token" TEXT NOT NULL,
    "tokenType" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "giveUpAt" TIMESTAMPTZ(3) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pending_revocations_pkey" PRIMARY KEY ("id")
);

