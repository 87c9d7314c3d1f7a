-- Hand-written (Prisma does not model functions or triggers): EVENT_RETENTION_DAYS.
-- The event log stays append-only for everyone but prune_connection_events, which may
-- delete rows older than the retention it is given, and never a row younger than a day.
-- Why batched deletes and not partitions: docs/adr/0007-event-retention.md.

-- A DELETE passes only inside prune_connection_events, which names its cutoff in a
-- transaction-local setting. The one-day floor keeps a hand-made `SET LOCAL` from
-- emptying the log: recent history cannot be deleted by any session.
CREATE OR REPLACE FUNCTION "connection_events_append_only"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  prune_before timestamptz :=
    nullif(current_setting('evergreen.prune_events_before', true), '')::timestamptz;
BEGIN
  IF TG_OP = 'DELETE' AND OLD."createdAt" < prune_before
     AND prune_before <= now() - interval '1 day' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'connection_events is append-only';
END;
$$;

-- Deletes up to batch_size of the oldest events (by id) that are older than
-- retention_days; returns how many, or NULL when another prune holds the lock.
-- Ids grow with createdAt (an id is drawn at the insert, createdAt is its transaction's
-- start: they disagree by at most one transaction's length), so the oldest ids are the
-- rows to prune: a batch reads batch_size entries of the primary key and no index on
-- createdAt is needed (one more index on the hot insert path). Once a batch deletes
-- nothing, the retention boundary is reached. Each call is its own short transaction;
-- the caller loops. Concurrent calls take turns on the advisory lock instead of
-- waiting on each other's row locks.
CREATE FUNCTION "prune_connection_events"(retention_days integer, batch_size integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz := now() - make_interval(days => retention_days);
  removed integer;
BEGIN
  IF retention_days < 1 OR batch_size < 1 THEN
    RAISE EXCEPTION 'retention_days and batch_size must be positive';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('prune_connection_events')) THEN
    RETURN NULL;
  END IF;
  PERFORM set_config('evergreen.prune_events_before', cutoff::text, true);
  -- An id array, not a join: the planner then always deletes through the primary key.
  DELETE FROM "connection_events"
   WHERE "id" = ANY (ARRAY(
     SELECT oldest."id"
       FROM (SELECT "id", "createdAt" FROM "connection_events"
              ORDER BY "id" LIMIT batch_size) oldest
      WHERE oldest."createdAt" < cutoff));
  GET DIAGNOSTICS removed = ROW_COUNT;
  PERFORM set_config('evergreen.prune_events_before', '', true);
  RETURN removed;
END;
$$;

-- Each prune leaves its rows dead at the low end of the primary key until VACUUM, and every
-- prune's first batch walks past them (about 10 ms per million, measured in the ADR). At
-- the default scale factor (0.2) a 720M-row log would wait for 144M dead rows, six days
-- of pruning; at 0.02 autovacuum comes about twice a day at that size.
ALTER TABLE "connection_events" SET (autovacuum_vacuum_scale_factor = 0.02);
