import type { Connection, ConnectionEventType, Integration, Pool } from "@evergreen/db";

/**
 * The refresh path's two statements, in SQL on the pg pool Prisma also uses. A refresh
 * is one read and one write; through the Prisma client those were six round trips
 * (two reads, BEGIN, UPDATE, INSERT, COMMIT) and about a fifth of a worker's CPU (see
 * bench/). Named statements are parsed and planned once per pooled connection.
 */

/** The integration fields a refresh reads. */
export type RefreshIntegration = Pick<
  Integration,
  | "id"
  | "provider"
  | "clientId"
  | "clientSecret"
  | "tokenUrl"
  | "clientAuth"
  | "bodyFormat"
  | "scopes"
  | "refreshBufferSeconds"
>;

/** What a refresh writes: every field it may change, given in full. */
export type ConnectionChange = Pick<
  Connection,
  | "accessToken"
  | "refreshToken"
  | "tokenType"
  | "scope"
  | "expiresAt"
  | "status"
  | "version"
  | "nextRefreshAt"
  | "lastRefreshedAt"
  | "refreshCount"
  | "consecutiveFailures"
  | "lastErrorCode"
  | "lastErrorMessage"
  | "lastErrorAt"
>;

export interface ConnectionEventInput {
  readonly type: ConnectionEventType;
  readonly outcome: string;
  readonly errorCode: string | null;
  readonly message: string | null;
}

const LOAD = `
  SELECT c.*,
         i.provider AS "i.provider", i."clientId" AS "i.clientId",
         i."clientSecret" AS "i.clientSecret", i."tokenUrl" AS "i.tokenUrl",
         i."clientAuth"::text AS "i.clientAuth", i."bodyFormat"::text AS "i.bodyFormat",
         i.scopes AS "i.scopes", i."refreshBufferSeconds" AS "i.refreshBufferSeconds"
    FROM connections c JOIN integrations i ON i.id = c."integrationId"
   WHERE c.id = $1`;

// One statement is one transaction: the row and its event are written together or not at
// all. The version fence makes a writer that lost its lease (or raced a re-registration)
// write nothing.
const WRITE = `
  WITH updated AS (
    UPDATE connections SET
      "accessToken" = $3, "refreshToken" = $4, "tokenType" = $5, scope = $6,
      "expiresAt" = $7, status = $8::"ConnectionStatus", version = $9,
      "nextRefreshAt" = $10, "lastRefreshedAt" = $11, "refreshCount" = $12,
      "consecutiveFailures" = $13, "lastErrorCode" = $14, "lastErrorMessage" = $15,
      "lastErrorAt" = $16, "updatedAt" = now()
    WHERE id = $1 AND version = $2
    RETURNING *
  ), event AS (
    INSERT INTO connection_events ("connectionId", "integrationId", type, outcome, "errorCode", message)
    SELECT id, "integrationId", $17::"ConnectionEventType", $18, $19, $20 FROM updated
  )
  SELECT * FROM updated`;

export class ConnectionStore {
  readonly #pool: Pool;

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  /** The connection and its integration, or null when it does not exist. */
  async load(
    connectionId: string,
  ): Promise<{ connection: Connection; integration: RefreshIntegration } | null> {
    const { rows } = await this.#pool.query<Record<string, unknown>>({
      name: "evergreen_refresh_load",
      text: LOAD,
      values: [connectionId],
    });
    const row = rows[0];
    if (!row) return null;
    const connection: Record<string, unknown> = {};
    const integration: Record<string, unknown> = { id: row.integrationId };
    for (const [column, value] of Object.entries(row)) {
      if (column.startsWith("i.")) integration[column.slice(2)] = value;
      else connection[column] = value;
    }
    return {
      connection: connection as Connection,
      integration: integration as RefreshIntegration,
    };
  }

  /**
   * Writes `change` over the row at `fence.version`, with its event, and returns the new
   * row; null when the row is gone or at another version (nothing is written then).
   */
  async write(
    fence: { readonly id: string; readonly version: number },
    change: ConnectionChange,
    event: ConnectionEventInput,
  ): Promise<Connection | null> {
    const { rows } = await this.#pool.query<Connection>({
      name: "evergreen_refresh_write",
      text: WRITE,
      values: [
        fence.id,
        fence.version,
        change.accessToken,
        change.refreshToken,
        change.tokenType,
        change.scope,
        change.expiresAt,
        change.status,
        change.version,
        change.nextRefreshAt,
        change.lastRefreshedAt,
        change.refreshCount,
        change.consecutiveFailures,
        change.lastErrorCode,
        change.lastErrorMessage,
        change.lastErrorAt,
        event.type,
        event.outcome,
        event.errorCode,
        event.message,
      ],
    });
    return rows[0] ?? null;
  }
}
