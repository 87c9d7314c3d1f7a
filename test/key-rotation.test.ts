import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEncryptionKey, KeyRing, parseEncryptionKeys } from "@evergreen/crypto";
import {
  openRefreshToken,
  QUEUE_PREFIX,
  refreshJob,
  refreshJobId,
  sealAccessToken,
  sealRefreshToken,
} from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  redisDatabaseUrl,
} from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type AppProcess, startApp, startCommand } from "./support/app-process";

// Worker processes use the production queue prefix: this file owns Redis database 3.
const REDIS_URL = redisDatabaseUrl(3);
/** The issue's numbers: 10,000 connections rotated while workers refresh some of them. */
const CONNECTIONS = 10_000;
const REFRESHED_DURING = 500;

let h: RefreshHarness;
let dir: string;
let newKey: string;
const workers: AppProcess[] = [];
const grants = new Map<string, string>();

beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL, prefix: QUEUE_PREFIX, latencyMs: 2 });
  await h.redis.flushdb();
  dir = await mkdtemp(join(tmpdir(), "evergreen-keys-"));
  newKey = generateEncryptionKey("new");
  // Rotating grants: a refresh token sent twice, or an answer lost, shows at the provider.
  const { connection, grant } = await h.addConnection({ rotate: true });
  grants.set(connection.id, grant.grantId);
  for (let start = 1; start < CONNECTIONS; start += 1000) {
    const batch = Array.from({ length: Math.min(1000, CONNECTIONS - start) }, () => ({
      id: randomUUID(),
      grant: h.provider.issueGrant({ rotate: true }),
    }));
    await h.prisma.$executeRawUnsafe(
      `INSERT INTO connections (id, "integrationId", "externalId", "accessToken", "refreshToken",
                                "expiresAt", "updatedAt")
       SELECT i.id, $2::uuid, 'rot-' || i.id, i.a, i.r, now() + interval '1 hour', now()
         FROM unnest($1::uuid[], $3::text[], $4::text[]) AS i(id, a, r)`,
      batch.map((b) => b.id),
      connection.integrationId,
      batch.map((b) => sealAccessToken(h.keyRing, b.id, b.grant.accessToken)),
      batch.map((b) => sealRefreshToken(h.keyRing, b.id, b.grant.refreshToken)),
    );
    for (const b of batch) grants.set(b.id, b.grant.grantId);
  }
}, 120_000);

afterAll(async () => {
  for (const worker of workers.splice(0)) {
    worker.child.kill("SIGKILL");
    await worker.exited;
  }
  await h?.close();
  await rm(dir, { recursive: true, force: true });
});

function startWorker(encryptionKeys: string): AppProcess {
  const worker = startApp("worker", {
    NODE_ENV: "test",
    DATABASE_URL: h.db.url,
    REDIS_URL,
    ENCRYPTION_KEYS: encryptionKeys,
    METRICS_PORT: "0",
    ALLOW_INSECURE_TOKEN_URLS: "true",
    REFRESH_TIMEOUT_MS: "10000",
    WORKER_CONCURRENCY: "100",
    LOG_LEVEL: "info",
  });
  workers.push(worker);
  return worker;
}

const ready = (worker: AppProcess) =>
  worker.waitForLog((line) => line.msg === "ops server listening");

async function stopWorkers(): Promise<Record<string, unknown>[]> {
  const logs: Record<string, unknown>[] = [];
  for (const worker of workers.splice(0)) {
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
    logs.push(...worker.logs);
  }
  return logs;
}

/** `npm run keys:<command>` as the package script runs it. */
function startKeys(command: string, encryptionKeys: string, auditLog: string): AppProcess {
  return startCommand(
    [process.execPath, "--import", "tsx", "apps/scheduler/src/keys/main.ts", command, "--json"],
    { DATABASE_URL: h.db.url, REDIS_URL, ENCRYPTION_KEYS: encryptionKeys, AUDIT_LOG: auditLog },
  );
}

/** A keys command's output lines and exit code. */
async function finished(run: AppProcess) {
  const code = await run.exited;
  return { code, lines: run.logs, stderr: run.stderr() };
}

/** Lines about a key: a decrypt failure, or a key missing from the ring. */
const decryptErrors = (logs: readonly Record<string, unknown>[]) =>
  logs.filter((line) => /Decryption|UnknownKey|decrypt/i.test(JSON.stringify(line)));

describe("keys:rotate across processes", () => {
  it("rotates 10,000 connections while workers refresh; workers with only the new key then refresh every one", async () => {
    const both = `${newKey},${h.encryptionKeys}`;
    const ids = [...grants.keys()];
    // Workers run with the new key prepended, as a deployment would before the rotation.
    await Promise.all([startWorker(both), startWorker(both)].map(ready));
    const during = ids.slice(0, REFRESHED_DURING);
    const auditLog = join(dir, "audit.jsonl");
    const rotateStarted = performance.now();
    const rotating = startKeys("rotate", both, auditLog);
    // Once the rotation is writing batches, the refreshes come due: slowed at the provider so
    // that they land among the rotation's writes.
    await rotating.waitForLog((line) => "progress" in line);
    h.provider.latencyMs = 100;
    await h.queue.addBulk(
      during.map((id) => refreshJob({ connectionId: id, version: 0 }, new Date())),
    );
    const rotation = await finished(rotating);
    const refreshedMeanwhile = await h.prisma.connection.count({ where: { refreshCount: 1 } });
    h.provider.latencyMs = 2;
    console.info(
      `keys:rotate: ${CONNECTIONS} connections in ${((performance.now() - rotateStarted) / 1000).toFixed(1)} s; ${refreshedMeanwhile} refreshes landed meanwhile, ${(rotation.lines.at(-1) as { fenced?: number }).fenced} rotation writes fenced`,
    );
    expect(rotation.stderr).toBe("");
    expect(rotation.code).toBe(0);
    const result = rotation.lines.at(-1) as { rotated: number; failed: unknown[] };
    expect(result.failed).toEqual([]);
    expect(result.rotated).toBeGreaterThanOrEqual(CONNECTIONS - REFRESHED_DURING);

    // The run is on the audit stream: started and finished, counts per key id, no key.
    const audit = (await readFile(auditLog, "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(audit).toEqual([
      expect.objectContaining({
        audit: true,
        kind: "security",
        event: "key_rotation",
        phase: "started",
        primaryKeyId: "new",
        dryRun: false,
        byKey: expect.objectContaining({ test: expect.any(Number) }),
      }),
      expect.objectContaining({
        event: "key_rotation",
        phase: "finished",
        byKey: { new: 2 * CONNECTIONS + 1, test: 0 },
        resealed: result.rotated,
        failed: 0,
        stopped: false,
      }),
    ]);
    for (const secret of [newKey, h.encryptionKeys]) {
      expect(await readFile(auditLog, "utf8")).not.toContain(secret.split(":")[1]);
    }
    await vi.waitFor(
      async () =>
        expect(await h.prisma.connection.count({ where: { refreshCount: 1 } })).toBe(
          REFRESHED_DURING,
        ),
      { timeout: 30_000, interval: 200 },
    );
    const logsDuring = await stopWorkers();
    expect(decryptErrors(logsDuring)).toEqual([]);

    // The old key removed from every process ("restart"): nothing needs it any more.
    const status = await finished(startKeys("status", newKey, join(dir, "status-audit.jsonl")));
    expect(status.code).toBe(0);
    expect(status.lines[0]).toMatchObject({ missing: [], byKey: { new: 2 * CONNECTIONS + 1 } });

    // Every connection due at once, for workers that hold only the new key.
    const started = performance.now();
    await Promise.all([startWorker(newKey), startWorker(newKey)].map(ready));
    for (const id of during) {
      await (await h.queue.getJob(refreshJobId({ connectionId: id, version: 1 })))?.promote();
    }
    const rest = ids.slice(REFRESHED_DURING);
    for (let start = 0; start < rest.length; start += 1000) {
      await h.queue.addBulk(
        rest
          .slice(start, start + 1000)
          .map((id) => refreshJob({ connectionId: id, version: 0 }, new Date())),
      );
    }
    await vi.waitFor(
      async () =>
        expect(await h.prisma.connection.count({ where: { refreshCount: { lt: 1 } } })).toBe(0),
      { timeout: 120_000, interval: 500 },
    );
    await vi.waitFor(
      async () =>
        expect(await h.prisma.connection.count({ where: { refreshCount: 2 } })).toBe(
          REFRESHED_DURING,
        ),
      { timeout: 30_000, interval: 200 },
    );
    console.info(
      `refreshed all ${CONNECTIONS} with only the new key in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const logsAfter = await stopWorkers();
    expect(decryptErrors(logsAfter)).toEqual([]);

    // 0 lost refreshes: the provider saw each refresh once, and what it considers the live
    // refresh token is the one stored, readable with the new key alone.
    expect(h.provider.reuseCount).toBe(0);
    const newOnly = new KeyRing(parseEncryptionKeys(newKey));
    const rows = await h.prisma.connection.findMany({
      select: { id: true, refreshToken: true, refreshCount: true, status: true },
    });
    expect(rows).toHaveLength(CONNECTIONS);
    let lost = 0;
    for (const row of rows) {
      const grant = h.provider.grant(grants.get(row.id) ?? "");
      if (
        !grant ||
        row.status !== "active" ||
        grant.revoked ||
        grant.refreshes !== row.refreshCount ||
        openRefreshToken(newOnly, row.id, row.refreshToken ?? "") !== grant.refreshToken
      ) {
        lost += 1;
      }
    }
    expect(lost).toBe(0);
  }, 300_000);
});
