import { type CipherContext, DecryptionError, type KeyRing } from "@evergreen/crypto";
import type { PrismaClient } from "@evergreen/db";
import type { ParkedAnswers } from "./parked-answers";
import { revokedTokenColumn } from "./revoke-grant";

interface SealedTable {
  readonly table: string;
  readonly fields: readonly string[];
  /**
   * Refreshes write tokens under this fence: a rotation that raced one loses, and the row
   * (holding the refresh's newer tokens) is read again on the next pass.
   */
  readonly version: boolean;
  /** Columns besides `id` that `context` reads. */
  readonly reads: readonly string[];
  /** What a ciphertext of `field` in `row` is bound to. */
  readonly context: (row: Row, field: string) => CipherContext;
}

/** Bound to its own row and column, as most sealed values are. */
const ownRow =
  (entity: string) =>
  (row: Row, field: string): CipherContext => ({ entity, rowId: row.id, field });

/**
 * Every sealed column, with what its ciphertexts are bound to (token-cipher.ts, webhooks'
 * endpoint-store.ts). A new sealed column must be listed here, or keys:status would call a
 * key unused while values still need it. The answers parked in Redis are the one sealed
 * store outside PostgreSQL (rotateParkedAnswers).
 */
const SEALED_TABLES: readonly SealedTable[] = [
  {
    table: "connections",
    fields: ["accessToken", "refreshToken"],
    version: true,
    reads: [],
    context: ownRow("connection"),
  },
  {
    table: "integrations",
    fields: ["clientSecret"],
    version: false,
    reads: [],
    context: ownRow("integration"),
  },
  {
    table: "connect_sessions",
    fields: ["codeVerifier"],
    version: false,
    reads: [],
    context: ownRow("connect_session"),
  },
  {
    table: "webhook_endpoints",
    fields: ["secret", "previousSecret"],
    version: false,
    reads: [],
    context: ownRow("webhook_endpoint"),
  },
  {
    // A deleted connection's token kept (up to a day) to revoke its grant: copied as is, so
    // still bound to the connection's id and the column it came from (revoke-grant.ts).
    table: "pending_revocations",
    fields: ["token"],
    version: false,
    reads: ["connectionId", "tokenType"],
    context: (row) => ({
      entity: "connection",
      rowId: String(row.connectionId),
      field: revokedTokenColumn(String(row.tokenType)),
    }),
  },
];

/** Ciphertexts of one column (or `parked_answers`) under one key id. */
export interface CiphertextCount {
  readonly column: string;
  readonly keyId: string;
  readonly count: number;
}

/** A value that cannot be re-sealed: its key is not in the ring, or it does not open. */
export interface UnreadableCiphertext {
  readonly column: string;
  readonly id: string;
  readonly keyId: string;
  readonly error: string;
}

const keyIdOf = (ciphertext: string) => ciphertext.split(".")[1] ?? "";

/**
 * Ciphertexts per column and key id: one sequential scan of each sealed table, grouped on
 * the key id the ciphertext names in clear (ADR 0003). Also what the scheduler publishes.
 */
export async function countCiphertexts(prisma: PrismaClient): Promise<CiphertextCount[]> {
  const parts = SEALED_TABLES.flatMap(({ table, fields }) =>
    fields.map(
      (field) => `SELECT '${table}.${field}' AS "column", split_part("${field}", '.', 2) AS "keyId",
                         count(*)::int AS count
                    FROM ${table} WHERE "${field}" IS NOT NULL GROUP BY 2`,
    ),
  );
  return prisma.$queryRawUnsafe<CiphertextCount[]>(`${parts.join(" UNION ALL ")} ORDER BY 1, 2`);
}

export interface KeyStatus {
  readonly primaryKeyId: string;
  readonly counts: readonly CiphertextCount[];
  /** Total ciphertexts per key id, keys of the ring with none included. */
  readonly byKey: Readonly<Record<string, number>>;
  /** Keys of the ring (never the primary) that seal nothing: they can be removed. */
  readonly unusedKeys: readonly string[];
  /** Key ids that ciphertexts name and the ring lacks, with the rows holding them. */
  readonly missing: readonly UnreadableCiphertext[];
}

/** How many reports of rows under a missing key one status lists. */
const MISSING_LIST_LIMIT = 1000;

/** What keys:status reports: ciphertexts per key, in PostgreSQL and among parked answers. */
export async function keyStatus(
  prisma: PrismaClient,
  parked: ParkedAnswers,
  ring: KeyRing,
): Promise<KeyStatus> {
  const counts = [...(await countCiphertexts(prisma))];
  const parkedAnswers = await parked.sealedTokens();
  const parkedByKey = new Map<string, number>();
  for (const { tokens } of parkedAnswers) {
    for (const token of tokens) {
      parkedByKey.set(keyIdOf(token), (parkedByKey.get(keyIdOf(token)) ?? 0) + 1);
    }
  }
  for (const [keyId, count] of parkedByKey) counts.push({ column: "parked_answers", keyId, count });

  const byKey: Record<string, number> = Object.fromEntries(ring.keyIds.map((id) => [id, 0]));
  for (const { keyId, count } of counts) byKey[keyId] = (byKey[keyId] ?? 0) + count;
  const known = new Set(ring.keyIds);
  const missingIds = Object.keys(byKey).filter((id) => !known.has(id));
  const missing: UnreadableCiphertext[] = [];
  if (missingIds.length > 0) {
    for (const { table, fields } of SEALED_TABLES) {
      for (const field of fields) {
        const rows = await prisma.$queryRawUnsafe<{ id: string; keyId: string }[]>(
          `SELECT id::text, split_part("${field}", '.', 2) AS "keyId" FROM ${table}
            WHERE split_part("${field}", '.', 2) = ANY($1::text[]) ORDER BY id LIMIT ${MISSING_LIST_LIMIT}`,
          missingIds,
        );
        for (const row of rows) {
          missing.push({ column: `${table}.${field}`, ...row, error: "UnknownKeyError" });
        }
      }
    }
    for (const { id, tokens } of parkedAnswers) {
      for (const token of tokens) {
        if (!known.has(keyIdOf(token))) {
          missing.push({
            column: "parked_answers",
            id,
            keyId: keyIdOf(token),
            error: "UnknownKeyError",
          });
        }
      }
    }
  }
  return {
    primaryKeyId: ring.primaryKeyId,
    counts,
    byKey,
    unusedKeys: ring.keyIds.filter((id) => id !== ring.primaryKeyId && byKey[id] === 0),
    missing,
  };
}

export interface RotationProgress {
  readonly table: string;
  /** Rows read so far in this run, every table so far (`table` is the one being read). */
  readonly done: number;
  /** Rows not under the primary key when the run started, across every table. */
  readonly total: number;
  readonly rotated: number;
  /** Writes that lost to a concurrent change; such rows are read again on the next pass. */
  readonly fenced: number;
  readonly failed: number;
}

export interface RotationOptions {
  readonly batchSize?: number;
  readonly dryRun?: boolean;
  /** Aborted: the run stops after the batch in hand (resume by running again). */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: RotationProgress) => void;
}

export interface RotationResult {
  readonly primaryKeyId: string;
  readonly dryRun: boolean;
  /** Rows re-sealed (in a dry run: that would be). */
  readonly rotated: number;
  readonly fenced: number;
  readonly failed: readonly UnreadableCiphertext[];
  readonly stopped: boolean;
}

/** Passes over a table while writes keep losing to concurrent changes. */
const MAX_PASSES = 20;

interface Row {
  readonly id: string;
  readonly version?: number;
  readonly [field: string]: string | number | null | undefined;
}

/**
 * Re-seals every value not under the ring's primary key, table by table, in batches paged
 * by id. A row's write holds only where the row still has what was read (its `version`
 * too, for connections), so the system keeps running meanwhile; rows already rotated no
 * longer match, so a run that is killed resumes by starting again. Each re-sealed
 * connection gets a `reencrypted` event (key ids only, never a value).
 */
export async function rotateCiphertexts(
  prisma: PrismaClient,
  parked: ParkedAnswers,
  ring: KeyRing,
  options: RotationOptions = {},
): Promise<RotationResult> {
  const batchSize = options.batchSize ?? 500;
  const prefix = `ev1.${ring.primaryKeyId}.`;
  let total = 0;
  for (const table of SEALED_TABLES) {
    const [row] = await prisma.$queryRawUnsafe<{ count: number }[]>(
      `SELECT count(*)::int AS count FROM ${table.table} WHERE ${stale(table)}`,
      prefix,
    );
    total += row?.count ?? 0;
  }
  const staleParked = (await parked.sealedTokens()).filter(({ tokens }) =>
    tokens.some((token) => ring.needsReEncryption(token)),
  );
  total += staleParked.length;
  let rotated = 0;
  let fenced = 0;
  const failed: UnreadableCiphertext[] = [];
  let stopped = false;
  let done = 0;

  tables: for (const table of SEALED_TABLES) {
    const failedIds = new Set<string>();
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      let after = "00000000-0000-0000-0000-000000000000";
      let fencedInPass = 0;
      for (;;) {
        if (options.signal?.aborted) {
          stopped = true;
          break tables;
        }
        const columns = [
          ...[...table.fields, ...table.reads].map((f) => `"${f}"::text`),
          ...(table.version ? ["version"] : []),
        ];
        const rows = await prisma.$queryRawUnsafe<Row[]>(
          `SELECT id::text, ${columns.join(", ")} FROM ${table.table}
            WHERE id > $2::uuid AND (${stale(table)}) ORDER BY id LIMIT ${batchSize}`,
          prefix,
          after,
        );
        if (rows.length === 0) break;
        after = rows.at(-1)?.id ?? after;
        const writes: { row: Row; sealed: (string | null)[]; from: string[] }[] = [];
        for (const row of rows) {
          if (failedIds.has(row.id)) continue;
          const { failures, ...resealed } = reseal(ring, table, row);
          if (failures.length > 0) {
            failedIds.add(row.id);
            failed.push(...failures);
          }
          // A row's other values are re-sealed all the same: a refresh token left under the
          // old key because its row's access token was unreadable was lost with that key.
          if (resealed.from.length > 0) writes.push({ row, ...resealed });
        }
        const written = options.dryRun
          ? writes.length
          : await writeRetryingDeadlocks(() => write(prisma, table, writes, ring.primaryKeyId));
        rotated += written;
        fencedInPass += writes.length - written;
        done += rows.length;
        options.onProgress?.({
          table: table.table,
          done,
          total,
          rotated,
          fenced: fenced + fencedInPass,
          failed: failed.length,
        });
      }
      fenced += fencedInPass;
      if (fencedInPass === 0 || options.dryRun) break;
    }
  }
  if (!stopped) {
    const run = await rotateParkedAnswers(parked, ring, staleParked, options);
    rotated += run.rotated;
    fenced += run.fenced;
    failed.push(...run.failed);
  }
  return {
    primaryKeyId: ring.primaryKeyId,
    dryRun: options.dryRun ?? false,
    rotated,
    fenced,
    failed,
    stopped,
  };
}

/**
 * The answers parked in Redis (parked-answers.ts), re-sealed one by one, each write fenced by
 * the answer's whole text: one a refresh took or parked again meanwhile is read again on the
 * next pass (a refresh stores a parked answer's tokens re-sealed, see refreshConnection).
 */
async function rotateParkedAnswers(
  parked: ParkedAnswers,
  ring: KeyRing,
  stale: readonly { id: string; tokens: string[] }[],
  options: RotationOptions,
): Promise<{ rotated: number; fenced: number; failed: UnreadableCiphertext[] }> {
  let rotated = 0;
  let fenced = 0;
  const failed: UnreadableCiphertext[] = [];
  let pending = stale.map(({ id }) => id);
  for (let pass = 0; pass < MAX_PASSES && pending.length > 0; pass++) {
    const again: string[] = [];
    for (const id of pending) {
      let keyId = "";
      // A dry run opens each value (so an unreadable one is reported) and writes nothing.
      const reseal = (field: string, sealed: string) => {
        if (!ring.needsReEncryption(sealed)) return sealed;
        keyId = keyIdOf(sealed);
        const context = { entity: "connection", rowId: id, field };
        const plain = ring.decrypt(sealed, context);
        return options.dryRun ? sealed : ring.encrypt(plain, context);
      };
      try {
        const outcome = await parked.resealTokens(id, reseal);
        if (outcome === "resealed" || (options.dryRun && outcome === "current")) rotated += 1;
        if (outcome === "fenced") {
          fenced += 1;
          again.push(id);
        }
      } catch (error) {
        if (!(error instanceof DecryptionError)) throw error;
        failed.push({ column: "parked_answers", id, keyId, error: error.name });
      }
    }
    pending = again;
  }
  return { rotated, fenced, failed };
}

/** Rows with a value not under the primary key (`$1` is its prefix; LIKE would read `_`). */
function stale({ fields }: SealedTable): string {
  return fields.map((f) => `NOT starts_with("${f}", $1)`).join(" OR ");
}

/**
 * The row's values, each under the primary key where it could be opened and as it was where
 * not (`failures`); `from` names the keys of those re-sealed (none: nothing to write).
 */
function reseal(
  ring: KeyRing,
  { table, fields, context: bound }: SealedTable,
  row: Row,
): { sealed: (string | null)[]; from: string[]; failures: UnreadableCiphertext[] } {
  const sealed: (string | null)[] = [];
  const from = new Set<string>();
  const failures: UnreadableCiphertext[] = [];
  for (const field of fields) {
    const value = row[field];
    if (typeof value !== "string" || !ring.needsReEncryption(value)) {
      sealed.push(typeof value === "string" ? value : null);
      continue;
    }
    const context = bound(row, field);
    try {
      sealed.push(ring.encrypt(ring.decrypt(value, context), context));
      from.add(keyIdOf(value));
    } catch (error) {
      if (!(error instanceof DecryptionError)) throw error;
      sealed.push(value);
      failures.push({
        column: `${table}.${field}`,
        id: row.id,
        keyId: keyIdOf(value),
        error: error.name,
      });
    }
  }
  return { sealed, from: [...from], failures };
}

/**
 * One statement per batch: the new values where each row still holds the values read (and
 * the version, for connections), and for connections a `reencrypted` event per row written.
 * Returns how many rows were written.
 */
/**
 * A batch locks its rows in its own order while refresh writes lock theirs: PostgreSQL
 * breaks such a cycle by failing one side (40P01). Seen when rotating 10,000 connections
 * while 200 refreshed. The batch is fenced by value and version, so running it again is
 * safe: rows a refresh wrote meanwhile are left to a later pass.
 */
async function writeRetryingDeadlocks(run: () => Promise<number>): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= DEADLOCK_RETRIES || !isDeadlock(error)) throw error;
    }
  }
}

const DEADLOCK_RETRIES = 5;

function isDeadlock(error: unknown): boolean {
  const meta = (error as { meta?: { code?: unknown } } | null)?.meta;
  return meta?.code === "40P01" || (error instanceof Error && error.message.includes("`40P01`"));
}

async function write(
  prisma: PrismaClient,
  { table, fields, version }: SealedTable,
  writes: readonly { row: Row; sealed: (string | null)[]; from: string[] }[],
  primaryKeyId: string,
): Promise<number> {
  if (writes.length === 0) return 0;
  const values: unknown[] = [writes.map((w) => w.row.id)];
  const inputs = ["id"];
  const types = ["uuid"];
  fields.forEach((field, index) => {
    values.push(
      writes.map((w) => w.row[field] ?? null),
      writes.map((w) => w.sealed[index] ?? null),
    );
    inputs.push(`"old_${field}"`, `"new_${field}"`);
    types.push("text", "text");
  });
  if (version) {
    values.push(
      writes.map((w) => w.row.version),
      writes.map((w) => w.from.join(",")),
    );
    inputs.push("version", "from_keys");
    types.push("int", "text");
  }
  const unnest = `unnest(${types.map((type, i) => `$${i + 1}::${type}[]`).join(", ")}) AS i(${inputs.join(", ")})`;
  const update = `UPDATE ${table} t SET ${fields.map((f) => `"${f}" = i."new_${f}"`).join(", ")}
    FROM ${unnest}
   WHERE t.id = i.id ${version ? "AND t.version = i.version" : ""}
     ${fields.map((f) => `AND t."${f}" IS NOT DISTINCT FROM i."old_${f}"`).join(" ")}`;
  if (!version) return prisma.$executeRawUnsafe(update, ...values);
  const [row] = await prisma.$queryRawUnsafe<{ count: number }[]>(
    `WITH written AS (${update} RETURNING t.id, t."integrationId", i.from_keys),
          events AS (
            INSERT INTO connection_events ("connectionId", "integrationId", type, outcome, message)
            SELECT id, "integrationId", 'reencrypted', 'success',
                   'from key ' || from_keys || ' to key ' || $${values.length + 1}
              FROM written RETURNING 1)
     SELECT count(*)::int AS count FROM events`,
    ...values,
    primaryKeyId,
  );
  return row?.count ?? 0;
}
