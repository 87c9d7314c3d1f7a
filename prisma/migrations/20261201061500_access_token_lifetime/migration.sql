-- An integration may state how long access tokens live when the provider's answer does
-- not (issue 12: Salesforce answers without expires_in; the org's session timeout decides).

-- AlterTable
ALTER TABLE "integrations" ADD COLUMN     "accessTokenLifetimeSeconds" INTEGER;
