-- AlterTable
ALTER TABLE "integrations" ADD COLUMN     "authorizationParams" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "authorizationUrl" TEXT,
ADD COLUMN     "returnUrls" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- CreateTable
CREATE TABLE "connect_sessions" (
    "id" UUID NOT NULL,
    "stateHash" TEXT NOT NULL,
    "integrationId" UUID NOT NULL,
    "externalId" TEXT NOT NULL,
    "returnUrl" TEXT NOT NULL,
    "redirectUri" TEXT NOT NULL,
    "scopes" TEXT[],
    "metadata" JSONB,
    "codeVerifier" TEXT,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,
    "consumedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "connect_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "connect_sessions_stateHash_key" ON "connect_sessions"("stateHash");

-- CreateIndex
CREATE INDEX "connect_sessions_expiresAt_idx" ON "connect_sessions"("expiresAt");

-- AddForeignKey
ALTER TABLE "connect_sessions" ADD CONSTRAINT "connect_sessions_integrationId_fkey" FOREIGN KEY ("integrationId") REFERENCES "integrations"("id") ON DELETE CASCADE ON UPDATE CASCADE;

