import { randomUUID } from "node:crypto";
import type { Integration, Prisma } from "@evergreen/db";
import { recordWebhookEvents } from "@evergreen/webhooks";
import type { RegistrationDeps } from "./register-connection";
import {
  type ExistingConnection,
  lockExistingConnections,
  mustWaitForRefresh,
  type RegisteredColumns,
  type RegistrationTokens,
  registeredColumns,
  registrationEvents,
  registrationTiming,
} from "./registration-rules";
import { refreshJob } from "./schedule";
import { scheduleOrDefer } from "./schedule-or-defer";

/**
 * What became of one registration of a batch. `single`: the batch left it to
 * registerConnection (a refresh in flight it must wait for, or a row a concurrent
 * registration created meanwhile under another id).
 */
export type BatchOutcome = "created" | "updated" | "unchanged" | "single";

export interface BatchOptions {
  /** Decide, write nothing. @defaultValue false */
  readonly dryRun?: boolean | undefined;
  /** A registration this says the stored row already holds is left alone. */
  readonly isUnchanged?:
    | ((stored: ExistingConnection, input: RegistrationTokens) => boolean)
    | undefined;
}

/** SQL type of every column the registration rules write: a new rule must be typed here. */
const COLUMN_TYPES = {
  accessToken: "text",
  refreshToken: "text",
  refreshTokenExpiresAt: "timestamptz",
  reauthSoonNotifiedFor: "timestamptz",
  inDoubtSince: "timestamptz",
  tokenType: "text",
  scope: "text",
  expiresAt: "timestamptz",
  status: '"ConnectionStatus"',
  nextRefreshAt: "timestamptz",
  consecutiveFailures: "int",
  consecutiveUnknown: "int",
  lastErrorCode: "text",
  lastErrorMessage: "text",
  lastErrorAt: "timestamptz",
  metadata: "jsonb",
} as const satisfies Record<keyof RegisteredColumns, string>;
const COLUMNS = Object.keys(COLUMN_TYPES) as (keyof RegisteredColumns)[];

/** How long one batch's transaction may take (Prisma's default, 5 s, is for one row). */
const BATCH_TIMEOUT_MS = 120_000;

interface RowWrite {
  readonly index: number;
  readonly id: string;
  readonly input: RegistrationTokens;
  readonly existing: ExistingConnection | undefined;
  readonly columns: RegisteredColumns;
}

/**
 * Registers many connections of one integration as registerConnection registers each (the
 * same rules: registration-rules.ts), in one transaction: the stored rows locked by one
 * SELECT, one multi-row upsert, one INSERT of events and one of webhook events, then the
 * refresh jobs queued by one `addBulk`. For imports, where a registration per line costs a
 * transaction and a round trip each (82 lines/s on a loaded 2-core box).
 *
 * `inputs` must name each external id once. Those answered `single` are to be registered one
 * by one (registerConnection waits for a refresh in flight; a batch must not).
 */
export async function registerConnectionBatch(
  deps: RegistrationDeps,
  integration: Integration,
  inputs: readonly RegistrationTokens[],
  options: BatchOptions = {},
): Promise<BatchOutcome[]> {
  const now = (deps.now ?? (() => new Date()))();
  const outcomes: BatchOutcome[] = [];
  const written = await deps.prisma.$transaction(
    async (tx) => {
      const stored = await lockExistingConnections(
        tx,
        integration.id,
        inputs.map((input) => input.externalId),
      );
      const byExternalId = new Map(stored.map((row) => [row.externalId, row]));
      const writes: RowWrite[] = [];
      inputs.forEach((input, index) => {
        const existing = byExternalId.get(input.externalId);
        if (existing && options.isUnchanged?.(existing, input)) {
          outcomes[index] = "unchanged";
        } else if (mustWaitForRefresh(input, existing)) {
          outcomes[index] = "single";
        } else {
          outcomes[index] = existing ? "updated" : "created";
          const id = existing?.id ?? randomUUID();
          const timing = registrationTiming(deps, integration, input, now);
          if (!options.dryRun) {
            writes.push({
              index,
              id,
              input,
              existing,
              columns: registeredColumns(deps.keyRing, id, input, existing, timing),
            });
          }
        }
      });
      if (writes.length === 0) return [];
      const versions = await upsert(tx, integration.id, writes);
      const done = writes.filter((w) => versions.has(w.id));
      // Not written: a concurrent registration created the row under another id since the
      // SELECT; tokens sealed for this batch's id would not open there.
      for (const w of writes) if (!versions.has(w.id)) outcomes[w.index] = "single";
      await recordEvents(tx, integration, done);
      return done.map((w) => ({ ...w, version: versions.get(w.id) ?? 0 }));
    },
    { timeout: BATCH_TIMEOUT_MS, maxWait: BATCH_TIMEOUT_MS },
  );

  const jobs = written.flatMap(({ id, version, columns }) =>
    columns.nextRefreshAt
      ? [refreshJob({ connectionId: id, version }, columns.nextRefreshAt, now)]
      : [],
  );
  if (jobs.length > 0) {
    await scheduleOrDefer(deps.log, { connections: jobs.length }, deps.queue.addBulk(jobs));
  }
  return outcomes;
}

/**
 * One INSERT ... ON CONFLICT for the batch. An update holds only on the row that was locked
 * (same id, same version): a row another registration created meanwhile is left alone.
 * Returns the version each written row has now, by id.
 */
async function upsert(
  tx: Prisma.TransactionClient,
  integrationId: string,
  writes: readonly RowWrite[],
): Promise<Map<string, number>> {
  const arrays: unknown[] = [
    writes.map((w) => w.id),
    writes.map((w) => w.input.externalId),
    writes.map((w) => w.existing?.version ?? 0),
    ...COLUMNS.map((column) => writes.map((w) => toParameter(w.columns[column]))),
  ];
  const names = ["id", '"externalId"', "version", ...COLUMNS.map((c) => `"${c}"`)];
  const types = ["uuid", "text", "int", ...COLUMNS.map((c) => COLUMN_TYPES[c])];
  const unnest = types.map((type, i) => `$${i + 2}::${type}[]`).join(", ");
  const rows = await tx.$queryRawUnsafe<{ id: string; version: number }[]>(
    `INSERT INTO connections AS c ("integrationId", ${names.join(", ")}, "updatedAt")
     SELECT $1::uuid, i.*, now() FROM unnest(${unnest}) AS i(${names.join(", ")})
     ON CONFLICT ("integrationId", "externalId") DO UPDATE
        SET ${COLUMNS.map((c) => `"${c}" = EXCLUDED."${c}"`).join(", ")},
            version = c.version + 1, "updatedAt" = now(),
            -- A kept refresh token keeps the doubt of a claim abandoned on it (ADR 0016).
            "claimVersion" = CASE
              WHEN EXCLUDED."refreshToken" IS NOT DISTINCT FROM c."refreshToken"
               AND c."claimVersion" = c.version AND c."claimExpiresAt" <= now()
              THEN c.version + 1 ELSE c."claimVersion" END
      WHERE c.id = EXCLUDED.id AND c.version = EXCLUDED.version
     RETURNING c.id::text, c.version`,
    integrationId,
    ...arrays,
  );
  return new Map(rows.map((row) => [row.id, row.version]));
}

/** Dates as ISO text and JSON as its text, so every column travels as a plain array. */
function toParameter(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return value;
}

async function recordEvents(
  tx: Prisma.TransactionClient,
  integration: Integration,
  done: readonly RowWrite[],
): Promise<void> {
  if (done.length === 0) return;
  const events = done.map((w) => ({ w, ...registrationEvents(w.existing) }));
  await tx.$executeRaw`
    INSERT INTO connection_events ("connectionId", "integrationId", type)
    SELECT id, ${integration.id}::uuid, type
      FROM unnest(${done.map((w) => w.id)}::uuid[],
                  ${events.map((e) => e.event)}::"ConnectionEventType"[]) AS i(id, type)`;
  await recordWebhookEvents(
    tx,
    events.flatMap(({ w, webhook }) =>
      webhook
        ? [
            {
              type: webhook,
              connectionId: w.id,
              integration: integration.key,
              externalId: w.input.externalId,
              status: w.columns.status,
            },
          ]
        : [],
    ),
  );
}
