-- A refresh in doubt is never resent outside a reuse grace (docs/adr/0016), so the mark of
-- the one careful resend goes; a generic integration learns whether its server rotates.

-- AlterTable
ALTER TABLE "integrations" ADD COLUMN     "refreshTokensRotate" BOOLEAN;

-- AlterTable
ALTER TABLE "connections" DROP COLUMN "inDoubtResent";

