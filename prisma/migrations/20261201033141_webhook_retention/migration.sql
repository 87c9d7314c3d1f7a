-- Retention for the webhook tables and connect sessions (docs/adr/0007-event-retention.md).
-- The index is Prisma's (schema.prisma); the functions are hand-written, like
-- prune_connection_events, and the scheduler calls them after every sweep.

-- CreateIndex
CREATE INDEX "webhook_deliveries_eventId_idx" ON "webhook_deliveries"("eventId");

-- Deletes up to batch_size of the oldest webhook events older than retention_days, with
-- their outbox row, deliveries and attempts (ON DELETE CASCADE); returns how many, or NULL
-- when another prune holds the lock.
-- An event still being handed on is kept whatever its age: one in the outbox, or with a
-- pending delivery. A pending delivery is within its retry window (3 days from the event or
-- from a manual retry, at any age) or, just past it, has its last attempt still queued;
-- either way a worker still reads it. So EVENT_RETENTION_DAYS may stay below 3 days.
-- Kept events are skipped in the scan, not counted as its end, so a run of them at the old
-- end (a dead endpoint under a 1-day retention) cannot hide prunable events behind them.
-- Oldest means lowest (txid, id): txid is the writing transaction's id, drawn at its first
-- write, and createdAt is its start, so the two disagree by at most one transaction's
-- length, and the feed's index serves the scan (no index on createdAt to maintain).
-- Once a batch deletes nothing, the retention boundary is reached.
-- A manual retry committed between this scan and the DELETE loses its delivery with the
-- event; the retry's job then finds no delivery and skips. It takes an admin retrying an
-- event past retention at that moment.
CREATE FUNCTION "prune_webhook_events"(retention_days integer, batch_size integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz := now() - make_interval(days => retention_days);
  removed integer;
BEGIN
  IF retention_days < 1 OR batch_size < 1 THEN
    RAISE EXCEPTION 'retention_days and batch_size must be positive';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('prune_webhook_events')) THEN
    RETURN NULL;
  END IF;
  -- An id array, not a join: the planner then always deletes through the primary key.
  DELETE FROM "webhook_events"
   WHERE "id" = ANY (ARRAY(
     SELECT oldest."id"
       FROM (SELECT e."id", e."createdAt" FROM "webhook_events" e
              WHERE NOT EXISTS (SELECT FROM "webhook_deliveries" d
                                 WHERE d."eventId" = e."id" AND d."status" = 'pending')
                AND NOT EXISTS (SELECT FROM "webhook_outbox" o WHERE o."eventId" = e."id")
              ORDER BY e."txid", e."id" LIMIT batch_size) oldest
      WHERE oldest."createdAt" < cutoff));
  GET DIAGNOSTICS removed = ROW_COUNT;
  RETURN removed;
END;
$$;

-- Deletes up to batch_size connect sessions expired more than a day ago; returns how many,
-- or NULL when another prune holds the lock. Until then a late callback still finds its
-- session and is sent back to the app with expired_state (docs/adr/0009). The scheduler
-- calls it, so sessions go even when no new ones are created.
CREATE FUNCTION "prune_connect_sessions"(batch_size integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  removed integer;
BEGIN
  IF batch_size < 1 THEN
    RAISE EXCEPTION 'batch_size must be positive';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('prune_connect_sessions')) THEN
    RETURN NULL;
  END IF;
  DELETE FROM "connect_sessions"
   WHERE "id" = ANY (ARRAY(
     SELECT "id" FROM "connect_sessions"
      WHERE "expiresAt" < now() - interval '1 day'
      ORDER BY "expiresAt" LIMIT batch_size));
  GET DIAGNOSTICS removed = ROW_COUNT;
  RETURN removed;
END;
$$;
