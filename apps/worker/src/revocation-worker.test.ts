import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import { createLogger } from "@evergreen/observability";
import {
  createRevocationQueue,
  planRevocation,
  type RevocationDeps,
  requeuePendingRevocations,
  revokeGrant,
} from "@evergreen/refresh";
import {
  createRefreshHarness,
  metricValue,
  type RefreshHarness,
  TEST_REDIS_URL,
} from "@evergreen/refresh/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRevocationWorker } from "./revocation-worker";

// DB 0 with the harness's prefix: DB 3 is test/key-rotation.test.ts's, which flushes it.
const REDIS_URL = TEST_REDIS_URL;
let h: RefreshHarness;

beforeAll(async () => {
  h = await createRefreshHarness({ redisUrl: REDIS_URL });
});
afterAll(async () => {
  await h?.close();
});

describe("revocation worker", () => {
  it("revokes a pending revocation whose job was lost, once requeued", async () => {
    const { connection, grant } = await h.addConnection({ integrationKey: "revocable" });
    const integration = await h.prisma.integration.update({
      where: { id: connection.integrationId },
      data: { revocationUrl: h.provider.revocationUrl },
    });
    // The delete's transaction committed, but its enqueue never happened.
    await h.prisma.$transaction(async (tx) => {
      await planRevocation(tx, connection, integration, new Date());
      await tx.connection.delete({ where: { id: connection.id } });
    });

    const prefix = `${h.prefix}:revocations`;
    const queue = createRevocationQueue(h.redis, prefix);
    const deps: RevocationDeps = {
      prisma: h.prisma,
      keyRing: h.keyRing,
      egress: h.deps.egress,
      queue,
      metrics: h.metrics,
      log: createLogger({ name: "test", level: "silent" }),
      settings: h.deps.settings,
    };
    const consumer = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const worker = startRevocationWorker(deps, { connection: consumer, prefix, log: deps.log });
    try {
      expect(await requeuePendingRevocations(deps)).toBe(1);
      await expect.poll(() => h.prisma.pendingRevocation.count(), { timeout: 10_000 }).toBe(0);
      expect(h.provider.grant(grant.grantId)?.revoked).toBe(true);
      const event = await h.prisma.connectionEvent.findFirst({
        where: { connectionId: connection.id, type: "revoked" },
      });
      expect(event?.outcome).toBe("revoked");
    } finally {
      await worker.close();
      await consumer.quit();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  it("retries a revocation whose token this process cannot open, counted for the alert", async () => {
    const { connection } = await h.addConnection({ integrationKey: "revocable-lacking" });
    const integration = await h.prisma.integration.update({
      where: { id: connection.integrationId },
      data: { revocationUrl: h.provider.revocationUrl },
    });
    const revocationId = await h.prisma.$transaction(async (tx) => {
      const planned = await planRevocation(tx, connection, integration, new Date());
      await tx.connection.delete({ where: { id: connection.id } });
      return planned;
    });
    if (revocationId === null) throw new Error("the integration should revoke");
    const deps: RevocationDeps = {
      prisma: h.prisma,
      keyRing: KeyRing.fromSpec(generateEncryptionKey("other")),
      egress: h.deps.egress,
      queue: createRevocationQueue(h.redis, `${h.prefix}:revocations-lacking`),
      metrics: h.metrics,
      log: createLogger({ name: "test", level: "silent" }),
      settings: h.deps.settings,
    };
    const before = await metricValue(h.metrics.decryptionFailures, { source: "worker" });
    const requests = h.provider.requests;
    try {
      const run = await revokeGrant(deps, { revocationId, attempt: 0 });
      expect(run).toMatchObject({ kind: "retry" });
      expect(h.provider.requests).toBe(requests);
      expect(await metricValue(h.metrics.decryptionFailures, { source: "worker" })).toBe(
        before + 1,
      );
    } finally {
      await deps.queue.obliterate({ force: true });
      await deps.queue.close();
    }
  });
});
