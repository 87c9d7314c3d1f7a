// `npm run keys:status` and `npm run keys:rotate` (README, Custody): the key ring's
// ciphertexts per key id, and their re-sealing under the primary key.
import { parseArgs } from "node:util";
import { loadConfigOrExit } from "@evergreen/config";
import { KeyRing } from "@evergreen/crypto";
import { createPrismaClient, type PrismaClient } from "@evergreen/db";
import {
  type AuditLog,
  AuditLogError,
  createAuditLog,
  errorName,
  tellFirstError,
} from "@evergreen/observability";
import { createRedis, redisTarget } from "@evergreen/redis";
import {
  type KeyStatus,
  keyStatus,
  ParkedAnswers,
  RefreshLayout,
  type RotationProgress,
  type RotationResult,
  rotateCiphertexts,
} from "@evergreen/refresh";
import { keysEnv } from "./env";

const MAX_BATCH_SIZE = 10_000;
/** Failed values the summary names one by one; the rest are counted per key. */
const FAILURES_LISTED = 20;
/** A Redis command not answered in this time fails the run (exit 3). */
const CLI_REDIS_TIMEOUT_MS = 10_000;
const USAGE = `usage: keys status [--json] | keys rotate [--dry-run] [--json] [--batch-size 1..${MAX_BATCH_SIZE}]`;

function parseArguments() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        json: { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        "batch-size": { type: "string", default: "500" },
      },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return null;
  }
}

async function main(): Promise<number> {
  const parsed = parseArguments();
  if (!parsed) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const { positionals, values } = parsed;
  const command = positionals[0];
  const batchSize = Number(values["batch-size"]);
  // An integer, bounded: the batch is read whole and interpolated into its SELECT's LIMIT.
  const validBatch = Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= MAX_BATCH_SIZE;
  if ((command !== "status" && command !== "rotate") || !validBatch) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const { config } = loadConfigOrExit("keys", keysEnv, process.env, { exitCode: 3 });
  const ring = new KeyRing(config.ENCRYPTION_KEYS);
  const json = values.json || !process.stdout.isTTY;
  const prisma = createPrismaClient({ url: config.DATABASE_URL, poolSize: 2 });
  // A Redis that hangs ends the run too (exit 3), rather than holding it for ever.
  const redis = createRedis(redisTarget(config), "producer", "evergreen-keys", {
    commandTimeoutMs: CLI_REDIS_TIMEOUT_MS,
  });
  tellFirstError("keys", { redis });
  const parked = new ParkedAnswers(
    redis,
    new RefreshLayout(config.REFRESH_QUEUE_SHARDS).keys("parked"),
  );
  try {
    if (command === "status") {
      const status = await keyStatus(prisma, parked, ring);
      process.stdout.write(json ? `${JSON.stringify(status)}\n` : statusTable(status));
      return status.missing.length > 0 ? 1 : 0;
    }
    const result = await rotate(prisma, parked, ring, {
      auditLog: config.AUDIT_LOG,
      batchSize,
      dryRun: values["dry-run"],
      json,
    });
    if (!json) process.stderr.write("\n");
    process.stdout.write(json ? `${JSON.stringify(result)}\n` : rotationSummary(result));
    return result.failed.length > 0 || result.stopped ? 1 : 0;
  } finally {
    await prisma.$disconnect();
    await redis.quit();
  }
}

/**
 * One `keys rotate` run, on the audit stream: a rotation is a security event (which keys can
 * read what changes), written with key ids and counts, never a key.
 */
async function rotate(
  prisma: PrismaClient,
  parked: ParkedAnswers,
  ring: KeyRing,
  options: { auditLog: string; batchSize: number; dryRun: boolean; json: boolean },
): Promise<RotationResult> {
  // A stop request ends the run after the batch in hand; running again resumes.
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => stop.abort());
  const audit = openAuditLog(options.auditLog);
  const run = {
    event: "key_rotation",
    primaryKeyId: ring.primaryKeyId,
    dryRun: options.dryRun,
  } as const;
  try {
    const before = await keyStatus(prisma, parked, ring);
    audit.security({ ...run, phase: "started", byKey: before.byKey });
    const result = await rotateCiphertexts(prisma, parked, ring, {
      batchSize: options.batchSize,
      dryRun: options.dryRun,
      signal: stop.signal,
      onProgress: options.json ? progressLine : progressBar,
    });
    const after = await keyStatus(prisma, parked, ring);
    audit.security({
      ...run,
      phase: "finished",
      byKey: after.byKey,
      resealed: result.rotated,
      fenced: result.fenced,
      failed: result.failed.length,
      stopped: result.stopped,
    });
    return result;
  } catch (error) {
    audit.security({
      ...run,
      phase: "failed",
      error: error instanceof Error ? error.name : "unknown",
    });
    throw error;
  } finally {
    audit.close();
  }
}

/** The audit stream, or exit 3 with one line naming AUDIT_LOG when its file cannot be opened. */
function openAuditLog(destination: string): AuditLog {
  try {
    return createAuditLog({ name: "keys", destination });
  } catch (error) {
    if (!(error instanceof AuditLogError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(3);
  }
}

function statusTable(status: KeyStatus): string {
  const lines = [
    `primary key: ${status.primaryKeyId}`,
    "",
    "column                           key id         count",
  ];
  for (const { column, keyId, count } of status.counts) {
    lines.push(`${column.padEnd(32)} ${keyId.padEnd(14)} ${String(count).padStart(8)}`);
  }
  lines.push("", "per key:");
  for (const [keyId, count] of Object.entries(status.byKey)) {
    lines.push(`  ${keyId.padEnd(14)} ${String(count).padStart(8)}`);
  }
  lines.push(
    "",
    status.unusedKeys.length > 0
      ? `unused, can be removed from ENCRYPTION_KEYS: ${status.unusedKeys.join(", ")}`
      : "no key can be removed yet",
  );
  for (const { column, id, keyId } of status.missing) {
    lines.push(`MISSING key "${keyId}": ${column} of ${id}`);
  }
  return `${lines.join("\n")}\n`;
}

function progressLine(progress: RotationProgress): void {
  process.stdout.write(`${JSON.stringify({ progress })}\n`);
}

function progressBar({ table, done, total, rotated, fenced, failed }: RotationProgress): void {
  const width = 30;
  const filled = total === 0 ? width : Math.min(width, Math.round((rotated / total) * width));
  process.stderr.write(
    `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${rotated}/${total} ${table} (read ${done}, fenced ${fenced}, failed ${failed})   `,
  );
}

function rotationSummary(result: RotationResult): string {
  const lines = [
    `${result.dryRun ? "would re-seal" : "re-sealed"} ${result.rotated} rows under key ${result.primaryKeyId}` +
      ` (${result.fenced} writes lost to concurrent changes and were retried)`,
  ];
  // A key missing from the ring fails every value under it, tens of thousands maybe: the
  // first few by row, then a count per key (`--json` lists them all).
  for (const { column, id, keyId, error } of result.failed.slice(0, FAILURES_LISTED)) {
    lines.push(`FAILED ${column} of ${id}: key "${keyId}" (${error})`);
  }
  if (result.failed.length > FAILURES_LISTED) {
    const byKey = new Map<string, number>();
    for (const { keyId } of result.failed) byKey.set(keyId, (byKey.get(keyId) ?? 0) + 1);
    const counts = [...byKey].map(([keyId, count]) => `${count} under key "${keyId}"`);
    lines.push(
      `… ${result.failed.length - FAILURES_LISTED} more; ${result.failed.length} failed in all: ${counts.join(", ")} (--json lists each)`,
    );
  }
  if (result.stopped) lines.push("stopped before the end: run again to resume");
  return `${lines.join("\n")}\n`;
}

/**
 * Exit codes for scripts: 0 done, 1 values under a missing key (status) or not re-sealed
 * (rotate), 2 usage, 3 could not run (PostgreSQL or Redis away): never 1 for an outage.
 */
process.exitCode = await main().catch((error: unknown) => {
  process.stderr.write(`keys: could not run (${errorName(error)})\n`);
  return 3;
});
