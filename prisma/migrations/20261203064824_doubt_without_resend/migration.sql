-- A refresh in doubt is never resent outside a reuse grace (docs/adr/0016): a claim names
-- its holder, matched against the holder's send mark in Redis; a generic integration learns
-- whether its server rotates. "inDoubtResent" is no longer written; it stays for one release
-- so that workers of the previous one keep working during a rolling deploy.

-- AlterTable
ALTER TABLE "integrations" ADD COLUMN     "refreshTokensRotate" BOOLEAN;

-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "claimHolder" TEXT;

-- Connections the careful resend stopped in `error` need new tokens, as `needs_reauth` says.
UPDATE "connections" SET "status" = 'needs_reauth', "nextRefreshAt" = NULL
 WHERE "status" = 'error' AND "lastErrorCode" = 'in_doubt';
