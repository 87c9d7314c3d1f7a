import type { Connection, ConnectionEventType, Integration, Pool } from "@evergreen/db";
import type { WebhookEventType } from "@evergreen/webhooks";
import { MicroBatcher } from "./micro-batcher";

/**
 * The refresh path's two statements, in SQL on the pg pool Prisma also uses. A refresh
 * is one read and one write; through the Prisma client those were six round trips
 * (two reads, BEGIN, UPDATE, INSERT, COMMIT) and about a fifth of a worker's CPU (see
 * bench/). Reads and writes issued in the same turn of the event loop (a worker runs
 * hundreds of refreshes at once) go as one statement each, since on this kind of machine
 * a round trip to PostgreSQL costs more CPU than the rows it carries. Named statements
 * are parsed and planned once per pooled connection.
 */

/** The integration fields a refresh reads. */
export type RefreshIntegration = Pick<
  Integration,
  | "id"
  | "key"
  | "provider"
  | "clientId"
  | "clientSecret"
  | "tokenUrl"
  | "clientAuth"
  | "bodyFormat"
  | "scopes"
  | "refreshBufferSeconds"
  | "accessTokenLifetimeSeconds"
  | "refreshTokensRotate"
  | "refreshTokenRotation"
  | "updatedAt"
>;

/** What a refresh writes: every field it may change, given in full. */
export type ConnectionChange = Pick<
  Connection,
  | "accessToken"
  | "refreshToken"
  | "tokenType"
  | "scope"
  | "expiresAt"
  | "refreshTokenExpiresAt"
  | "status"
  | "version"
  | "nextRefreshAt"
  | "lastRefreshedAt"
  | "refreshCount"
  | "consecutiveFailures"
  | "consecutiveUnknown"
  | "lastErrorCode"
  | "lastErrorMessage"
  | "lastErrorAt"
  | "inDoubtSince"
> & {
  /**
   * Provider values an answer stated (Salesforce `instance_url`, Zoho `api_domain`), laid
   * over the stored metadata: they may move, and the app calls them. Null: none.
   */
  readonly appValues: Readonly<Record<string, string>> | null;
};

export interface ConnectionEventInput {
  readonly type: ConnectionEventType;
  readonly outcome: string;
  readonly errorCode: string | null;
  readonly message: string | null;
  /** The webhook event this change makes, if any (written with it, see WRITE). */
  readonly webhook?: WebhookEventType | null;
}

// Columns are listed, never `*`: a prepared statement whose result shape changes (a
// migration adding a column while workers run) fails on every pooled connection with
// "cached plan must not change result type".
const CONNECTION_COLUMNS = `c.id, c."integrationId", c."externalId", c."accessToken",
  c."refreshToken", c."tokenType", c.scope, c."expiresAt", c."refreshTokenExpiresAt",
  c.status::text AS status,
  c.version, c."nextRefreshAt", c."lastRefreshedAt", c."refreshCount",
  c."consecutiveFailures", c."consecutiveUnknown", c."lastErrorCode", c."lastErrorMessage", c."lastErrorAt",
  c."inDoubtSince", c.metadata, c."createdAt", c."updatedAt"`;

const LOAD = `
  SELECT ${CONNECTION_COLUMNS},
         i.key AS "i.key", i.provider AS "i.provider", i."clientId" AS "i.clientId",
         i."clientSecret" AS "i.clientSecret", i."tokenUrl" AS "i.tokenUrl",
         i."clientAuth"::text AS "i.clientAuth", i."bodyFormat"::text AS "i.bodyFormat",
         i.scopes AS "i.scopes", i."refreshBufferSeconds" AS "i.refreshBufferSeconds",
         i."accessTokenLifetimeSeconds" AS "i.accessTokenLifetimeSeconds",
         i."refreshTokensRotate" AS "i.refreshTokensRotate",
         i."refreshTokenRotation" AS "i.refreshTokenRotation", i."updatedAt" AS "i.updatedAt"
    FROM connections c JOIN integrations i ON i.id = c."integrationId"
   WHERE c.id = ANY($1::uuid[])`;

// One statement is one transaction: each row and its event are written together or not at
// all. The version fence makes a writer that lost its lease (or raced a re-registration)
// write nothing for that row. A row may also be fenced on its integration's updatedAt:
// a refusal of the client configuration read before an update of the integration must
// not stop the connection after the update (whose retry of `error` rows it would miss).
const WRITE = `
  WITH input AS (
    SELECT * FROM unnest(
      $1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
      $7::timestamptz[], $8::text[], $9::int[], $10::timestamptz[], $11::timestamptz[],
      $12::int[], $13::int[], $14::text[], $15::text[], $16::timestamptz[],
      $17::text[], $18::text[], $19::text[], $20::text[], $21::timestamptz[], $22::int[],
      $23::timestamptz[], $24::text[], $25::timestamptz[], $26::text[]
    ) AS i(id, fence, "accessToken", "refreshToken", "tokenType", scope, "expiresAt",
           status, version, "nextRefreshAt", "lastRefreshedAt", "refreshCount",
           "consecutiveFailures", "lastErrorCode", "lastErrorMessage", "lastErrorAt",
           "eventType", outcome, "errorCode", message, "integrationFence",
           "consecutiveUnknown", "refreshTokenExpiresAt", "webhookType",
           "inDoubtSince", "appValues")
  ), updated AS (
    UPDATE connections c SET
      "accessToken" = i."accessToken", "refreshToken" = i."refreshToken",
      "tokenType" = i."tokenType", scope = i.scope, "expiresAt" = i."expiresAt",
      "refreshTokenExpiresAt" = i."refreshTokenExpiresAt",
      status = i.status::"ConnectionStatus", version = i.version,
      "nextRefreshAt" = i."nextRefreshAt", "lastRefreshedAt" = i."lastRefreshedAt",
      "refreshCount" = i."refreshCount", "consecutiveFailures" = i."consecutiveFailures",
      "consecutiveUnknown" = i."consecutiveUnknown",
      "lastErrorCode" = i."lastErrorCode", "lastErrorMessage" = i."lastErrorMessage",
      "lastErrorAt" = i."lastErrorAt", "inDoubtSince" = i."inDoubtSince",
      "claimVersion" = NULL, "claimExpiresAt" = NULL, "claimHolder" = NULL,
      metadata = CASE WHEN i."appValues" IS NULL OR jsonb_typeof(c.metadata) <> 'object'
                      THEN c.metadata ELSE c.metadata || i."appValues"::jsonb END,
      "updatedAt" = now()
    FROM input i
    WHERE c.id = i.id AND c.version = i.fence
      AND (i."integrationFence" IS NULL OR EXISTS (
        SELECT 1 FROM integrations g
         WHERE g.id = c."integrationId" AND g."updatedAt" = i."integrationFence"))
    RETURNING ${CONNECTION_COLUMNS}
  ), event AS (
    INSERT INTO connection_events ("connectionId", "integrationId", type, outcome, "errorCode", message)
    SELECT u.id, u."integrationId", i."eventType"::"ConnectionEventType", i.outcome,
           i."errorCode", i.message
      FROM updated u JOIN input i ON i.id = u.id
  ), webhook AS (
    -- The transactional outbox (docs/adr/0011): a change apps hear about commits with its
    -- webhook event, or neither does. Most refreshes make none.
    INSERT INTO webhook_events
      (type, "connectionId", integration, "externalId", status, "errorCode", "errorMessage")
    SELECT i."webhookType", u.id, g.key, u."externalId", u.status, u."lastErrorCode",
           u."lastErrorMessage"
      FROM updated u JOIN input i ON i.id = u.id JOIN integrations g ON g.id = u."integrationId"
     WHERE i."webhookType" IS NOT NULL
    RETURNING id
  ), outbox AS (
    INSERT INTO webhook_outbox ("eventId") SELECT id FROM webhook
  )
  SELECT * FROM updated`;

// The claim (SPEC §2): before a refresh token is sent, PostgreSQL records which row version
// may send it, until when, and who holds it (`<version>:<holder>`, the name its send mark
// carries). A second claim of the same version fails while the first is live, whatever Redis
// has lost; a claim of a version the row has left fails too. A write clears the claim (see
// WRITE), since a stored answer ends what the claim was for. An expired claim of the same
// version is one whose holder never wrote an answer: unless the send mark the new holder
// replaced is that holder's own `claimed` mark, it may have sent the refresh token before it
// died, and for a provider that rotates the refresh is in doubt from that claim's start
// (docs/adr/0016). Decided here, in the statement that takes the row over, and kept on the
// row: the evidence of the dead holder goes with its claim, and a holder that dies in turn
// would otherwise take the doubt with it. `c` in SET is the row as it stood.
const CLAIM = `
  UPDATE connections c
     SET "claimVersion" = i.version,
         "claimExpiresAt" = now() + make_interval(secs => i."leaseMs" / 1000.0),
         "claimHolder" = i.version || ':' || i.holder,
         "inDoubtSince" = CASE
           WHEN c."claimVersion" = c.version AND i.rotates
            AND i.mark IS DISTINCT FROM c."claimHolder" || ':claimed'
           THEN COALESCE(c."inDoubtSince",
                         c."claimExpiresAt" - make_interval(secs => i."leaseMs" / 1000.0))
           ELSE c."inDoubtSince" END
    FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::text[], $6::boolean[])
           AS i(id, version, "leaseMs", holder, mark, rotates)
   WHERE c.id = i.id AND c.version = i.version
     AND (c."claimVersion" IS DISTINCT FROM c.version OR c."claimExpiresAt" <= now())
  RETURNING c.id, c."claimExpiresAt" AS until, c."inDoubtSince"`;

// A claim given back unused (its holder did not send), only while it is still the one handed
// out, so that a later holder's claim stays. Any doubt its taking found is on the row.
const RELEASE_CLAIM = `
  UPDATE connections SET "claimVersion" = NULL, "claimExpiresAt" = NULL, "claimHolder" = NULL
   WHERE id = $1 AND "claimVersion" = $2 AND "claimExpiresAt" = $3`;

// What a generic integration's answers showed about rotation (docs/adr/0016), fenced on the
// integration as the refresh read it: an answer from the server before a changed token URL
// teaches nothing. Not through Prisma: its @updatedAt would move that fence (see WRITE).
const NOTE_ROTATION = `
  UPDATE integrations SET "refreshTokensRotate" = $2
   WHERE id = $1 AND "updatedAt" = $3 AND "refreshTokensRotate" IS DISTINCT FROM true`;

type Loaded = { connection: Connection; integration: RefreshIntegration };

/** Which row version a write may replace. */
export interface WriteFence {
  readonly id: string;
  readonly version: number;
  /** Write only while the integration is still at this `updatedAt`. */
  readonly integrationUpdatedAt?: Date;
}

/** A claim held: the caller may send the refresh token of the row version it claimed. */
export interface ClaimHeld {
  /** When this claim runs out. */
  readonly until: Date;
  /**
   * The row's `inDoubtSince` as the claim left it: set by it when it took over a claim whose
   * holder may have sent the refresh token (docs/adr/0016).
   */
  readonly inDoubtSince: Date | null;
}

/** A claim to send the refresh token of one row version, for `leaseMs`. */
export interface Claim {
  readonly id: string;
  readonly version: number;
  readonly leaseMs: number;
  /** Who claims: the id its send mark carries (see send-marks.ts). */
  readonly holder: string;
  /** The send mark this holder replaced (see send-marks.ts). */
  readonly mark: string | null;
  /** Whether the refresh token may rotate: only then does an abandoned claim cast doubt. */
  readonly rotates: boolean;
}

interface WriteRequest {
  readonly fence: WriteFence;
  readonly change: ConnectionChange;
  readonly event: ConnectionEventInput;
}

export class ConnectionStore {
  readonly #pool: Pool;
  readonly #loads: MicroBatcher<string, Loaded>;
  readonly #writes: MicroBatcher<WriteRequest, Connection>;
  readonly #claims: MicroBatcher<Claim, ClaimHeld>;

  constructor(pool: Pool) {
    this.#pool = pool;
    // Keys are lowercase ids, as PostgreSQL prints the uuids the results are keyed by.
    this.#loads = new MicroBatcher(
      (id) => id.toLowerCase(),
      (ids) => this.#loadMany(ids),
    );
    this.#writes = new MicroBatcher(
      (request) => request.fence.id.toLowerCase(),
      (requests) => this.#writeMany(requests),
    );
    this.#claims = new MicroBatcher(
      (claim) => claim.id.toLowerCase(),
      (claims) => this.#claimMany(claims),
    );
  }

  /** The connection and its integration, or null when it does not exist. */
  load(connectionId: string): Promise<Loaded | null> {
    return this.#loads.submit(connectionId);
  }

  /**
   * Writes `change` over the row at `fence.version`, with its event, and returns the new
   * row; null when the row is gone or the fence does not hold (nothing is written then).
   */
  write(
    fence: WriteFence,
    change: ConnectionChange,
    event: ConnectionEventInput,
  ): Promise<Connection | null> {
    return this.#writes.submit({ fence, change, event });
  }

  /**
   * Claims the right to send the refresh token of row `claim.version` for `leaseMs`: the
   * claim when this caller holds it now, null when the row moved on or another claim of
   * this version is still live.
   */
  claim(claim: Claim): Promise<ClaimHeld | null> {
    return this.#claims.submit(claim);
  }

  /** Gives back a claim whose holder did not send the refresh token. */
  async releaseClaim(fence: WriteFence, claim: ClaimHeld): Promise<void> {
    await this.#pool.query(RELEASE_CLAIM, [fence.id, fence.version, claim.until]);
  }

  /** Records whether a generic integration's refresh answers rotate refresh tokens. */
  async noteRotation(
    integration: Pick<RefreshIntegration, "id" | "updatedAt">,
    rotates: boolean,
  ): Promise<void> {
    await this.#pool.query(NOTE_ROTATION, [integration.id, rotates, integration.updatedAt]);
  }

  async #claimMany(claims: readonly Claim[]): Promise<ReadonlyMap<string, ClaimHeld>> {
    const { rows } = await this.#pool.query<{ id: string } & ClaimHeld>({
      name: "evergreen_refresh_claim",
      text: CLAIM,
      values: [
        claims.map((c) => c.id),
        claims.map((c) => c.version),
        claims.map((c) => Math.ceil(c.leaseMs)),
        claims.map((c) => c.holder),
        claims.map((c) => c.mark),
        claims.map((c) => c.rotates),
      ],
    });
    return new Map(rows.map(({ id, ...held }) => [id, held]));
  }

  async #loadMany(ids: readonly string[]): Promise<ReadonlyMap<string, Loaded>> {
    const { rows } = await this.#pool.query<Record<string, unknown>>({
      name: "evergreen_refresh_load",
      text: LOAD,
      values: [ids],
    });
    const loaded = new Map<string, Loaded>();
    for (const row of rows) {
      const connection: Record<string, unknown> = {};
      const integration: Record<string, unknown> = { id: row.integrationId };
      for (const [column, value] of Object.entries(row)) {
        if (column.startsWith("i.")) integration[column.slice(2)] = value;
        else connection[column] = value;
      }
      loaded.set(row.id as string, {
        connection: connection as Connection,
        integration: integration as RefreshIntegration,
      });
    }
    return loaded;
  }

  async #writeMany(requests: readonly WriteRequest[]): Promise<ReadonlyMap<string, Connection>> {
    const column = <T>(pick: (request: WriteRequest) => T) => requests.map(pick);
    const { rows } = await this.#pool.query<Connection>({
      name: "evergreen_refresh_write",
      text: WRITE,
      values: [
        column((r) => r.fence.id),
        column((r) => r.fence.version),
        column((r) => r.change.accessToken),
        column((r) => r.change.refreshToken),
        column((r) => r.change.tokenType),
        column((r) => r.change.scope),
        column((r) => r.change.expiresAt),
        column((r) => r.change.status),
        column((r) => r.change.version),
        column((r) => r.change.nextRefreshAt),
        column((r) => r.change.lastRefreshedAt),
        column((r) => r.change.refreshCount),
        column((r) => r.change.consecutiveFailures),
        column((r) => r.change.lastErrorCode),
        column((r) => r.change.lastErrorMessage),
        column((r) => r.change.lastErrorAt),
        column((r) => r.event.type),
        column((r) => r.event.outcome),
        column((r) => r.event.errorCode),
        column((r) => r.event.message),
        column((r) => r.fence.integrationUpdatedAt ?? null),
        column((r) => r.change.consecutiveUnknown),
        column((r) => r.change.refreshTokenExpiresAt),
        column((r) => r.event.webhook ?? null),
        column((r) => r.change.inDoubtSince),
        // A parked answer from before this field has none.
        column((r) => (r.change.appValues ? JSON.stringify(r.change.appValues) : null)),
      ],
    });
    return new Map(rows.map((row) => [row.id, row]));
  }
}
