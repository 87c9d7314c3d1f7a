import { createLogger } from "@evergreen/observability";
import {
  createRevocationQueue,
  planRevocation,
  type RevocationDeps,
  requeuePendingRevocations,
} from "@evergreen/refresh";
import {
  createRefreshHarness,
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
});
