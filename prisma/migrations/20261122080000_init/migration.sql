-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "ConnectionStatus" AS ENUM ('active', 'expired', 'needs_reauth', 'error');

-- CreateEnum
CREATE TYPE "ClientAuth" AS ENUM ('basic', 'body');

-- CreateEnum
CREATE TYPE "BodyFormat" AS ENUM ('form', 'json');

-- CreateEnum
CREATE TYPE "ConnectionEventType" AS ENUM ('created', 'updated', 'refreshed', 'refresh_failed', 'needs_reauth', 'deleted', 'reencrypted');

-- CreateTable
CREATE TABLE "integrations" (
    "id" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "clientId" TEXT NOT NULL,
    "clientSecret" TEXT NOT NULL,
    "tokenUrl" TEXT,
    "clientAuth" "ClientAuth",
    "bodyFormat" "BodyFormat",
    "scopes" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "refreshBufferSeconds" INTEGER,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "integrations_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "connections" (
    "id" UUID NOT NULL,
    "integrationId" UUID NOT NULL,
    "externalId" TEXT NOT NULL,
    "accessToken" TEXT NOT NULL,
    "refreshToken" TEXT,
    "tokenType" TEXT NOT NULL DEFAULT 'Bearer',
    "scope" TEXT,
    "expiresAt" TIMESTAMPTZ(3),
    "status" "ConnectionStatus" NOT NULL DEFAULT 'active',
    "version" INTEGER NOT NULL DEFAULT 0,
    "nextRefreshAt" TIMESTAMPTZ(3),
    "lastRefreshedAt" TIMESTAMPTZ(3),
    "refreshCount" INTEGER NOT NULL DEFAULT 0,
    "consecutiveFailures" INTEGER NOT NULL DEFAULT 0,
    "lastErrorCode" TEXT,
    "lastErrorMessage" TEXT,
    "lastErrorAt" TIMESTAMPTZ(3),
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "connections_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "connection_events" (
    "id" BIGSERIAL NOT NULL,
    "connectionId" UUID NOT NULL,
    "integrationId" UUID NOT NULL,
    "type" "ConnectionEventType" NOT NULL,
    "outcome" TEXT,
    "errorCode" TEXT,
    "message" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "connection_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "integrations_key_key" ON "integrations"("key");

-- CreateIndex
CREATE INDEX "connections_status_nextRefreshAt_idx" ON "connections"("status", "nextRefreshAt");

-- CreateIndex
CREATE INDEX "connections_status_id_idx" ON "connections"("status", "id");

-- CreateIndex
CREATE UNIQUE INDEX "connections_integrationId_externalId_key" ON "connections"("integrationId", "externalId");

-- CreateIndex
CREATE INDEX "connection_events_connectionId_id_idx" ON "connection_events"("connectionId", "id");

-- AddForeignKey
ALTER TABLE "connections" ADD CONSTRAINT "connections_integrationId_fkey" FOREIGN KEY ("integrationId") REFERENCES "integrations"("id") ON DELETE RESTRICT ON UPDATE CASCADE;


-- Hand-written (Prisma does not model triggers): the event log is append-only.
CREATE FUNCTION "connection_events_append_only"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'connection_events is append-only';
END;
$$;

CREATE TRIGGER "connection_events_append_only"
BEFORE UPDATE OR DELETE ON "connection_events"
FOR EACH ROW EXECUTE FUNCTION "connection_events_append_only"();
