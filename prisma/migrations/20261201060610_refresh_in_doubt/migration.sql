-- A refresh in doubt (issue 12, docs/adr/0016): a rotating provider's answer was lost after the
-- refresh token was sent. Both columns are read and written by the refresh path's SQL only.

-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "inDoubtResent" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "inDoubtSince" TIMESTAMPTZ(3);

