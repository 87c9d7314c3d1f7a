import type { Pool } from "@evergreen/db";

/** How late a refresh may start before its connection counts as overdue. */
export const OVERDUE_GRACE_SECONDS = 5;

export interface ConnectionRow {
  id: string;
  status: string;
  version: number;
  refreshCount: number;
  nextRefreshAt: Date | null;
  lastErrorCode: string | null;
  /** When a refresh of a rotating provider lost its answer (docs/adr/0016); null otherwise. */
  inDoubtSince: Date | null;
}

/** What the suite reads from the private database: the system's side of each invariant. */
export class ChaosDatabase {
  constructor(private readonly pool: Pool) {}

  /** Refreshable connections past `nextRefreshAt` plus the grace; null when unreachable. */
  async overdue(): Promise<number | null> {
    try {
      const { rows } = await this.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM connections
          WHERE status IN ('active', 'expired')
            AND "nextRefreshAt" < now() - make_interval(secs => $1)`,
        [OVERDUE_GRACE_SECONDS],
      );
      return rows[0]?.n ?? 0;
    } catch {
      return null;
    }
  }

  /** Whether every one of these connections is `needs_reauth`. */
  async allNeedReauth(ids: readonly string[]): Promise<boolean> {
    try {
      const { rows } = await this.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM connections
          WHERE id = ANY($1::uuid[]) AND status = 'needs_reauth'`,
        [ids],
      );
      return rows[0]?.n === ids.length;
    } catch {
      return false;
    }
  }

  /** Connections that went in doubt at some point (an `in_doubt` event, docs/adr/0016). */
  async everInDoubt(): Promise<Set<string>> {
    const { rows } = await this.pool.query<{ id: string }>(
      `SELECT DISTINCT "connectionId" AS id FROM connection_events WHERE "errorCode" = 'in_doubt'`,
    );
    return new Set(rows.map((row) => row.id));
  }

  async connections(): Promise<Map<string, ConnectionRow>> {
    const { rows } = await this.pool.query<ConnectionRow>(
      `SELECT id, status::text AS status, version, "refreshCount", "nextRefreshAt", "lastErrorCode",
              "inDoubtSince"
         FROM connections`,
    );
    return new Map(rows.map((row) => [row.id, row]));
  }
}
