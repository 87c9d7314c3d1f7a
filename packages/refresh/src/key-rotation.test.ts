import { randomUUID } from "node:crypto";
import { generateEncryptionKey, KeyRing, parseEncryptionKeys } from "@evergreen/crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyStatus, rotateCiphertexts } from "./key-rotation";
import { refreshConnection } from "./refresh-connection";
import { createRefreshHarness, type RefreshHarness, redisDatabaseUrl } from "./testing";
import {
  openAccessToken,
  openRefreshToken,
  sealAccessToken,
  sealRefreshToken,
} from "./token-cipher";

// 10,000 rows rotate in a few seconds here (see README, Custody), so the test uses the
// issue's number.
const BULK = 10_000;
const REFRESHED = 200;

let h: RefreshHarness;
let oldRing: KeyRing;
let bothRing: KeyRing;
let newOnly: KeyRing;
let newKey: string;

beforeAll(async () => {
  // A refresh that times out on a busy machine has its answer lost by the client, which
  // is no rotation's doing: give the mock provider all the time it needs.
  h = await createRefreshHarness({ redisUrl: redisDatabaseUrl(1), timeoutMs: 30_000 });
  oldRing = h.keyRing;
  newKey = generateEncryptionKey("new");
  bothRing = KeyRing.fromSpec(`${newKey},${h.encryptionKeys}`);
  newOnly = new KeyRing(parseEncryptionKeys(newKey));
}, 60_000);

afterAll(() => h?.close());

/** Connections under the harness's (old) key, inserted by the thousand. */
async function bulkConnections(count: number): Promise<void> {
  const { connection } = await h.addConnection();
  for (let start = 0; start < count; start += 1000) {
    const ids = Array.from({ length: Math.min(1000, count - start) }, () => randomUUID());
    await h.prisma.$executeRawUnsafe(
      `INSERT INTO connections (id, "integrationId", "externalId", "accessToken", "refreshToken", "updatedAt")
       SELECT i.id, $2::uuid, 'bulk-' || i.id, i.a, i.r, now()
         FROM unnest($1::uuid[], $3::text[], $4::text[]) AS i(id, a, r)`,
      ids,
      connection.integrationId,
      ids.map((id) => sealAccessToken(oldRing, id, `at-${id}`)),
      ids.map((id) => sealRefreshToken(oldRing, id, `rt-${id}`)),
    );
  }
}

describe("key rotation", () => {
  it("rotates while refreshes land; the old key can then go with nothing lost", async () => {
    await bulkConnections(BULK);
    const refreshable = await Promise.all(
      // Half rotate their refresh token; the others' refresh writes back the one it read.
      Array.from({ length: REFRESHED }, (_, index) => h.addConnection({ rotate: index % 2 === 0 })),
    );
    const before = await keyStatus(h.prisma, h.deps.parked, bothRing);
    expect(before.byKey.test).toBe(2 * (BULK + REFRESHED + 1) + 1);
    expect(before.unusedKeys).toEqual([]);

    const dry = await rotateCiphertexts(h.prisma, h.deps.parked, bothRing, { dryRun: true });
    expect(dry.rotated).toBe(BULK + REFRESHED + 1 + 1);
    expect((await keyStatus(h.prisma, h.deps.parked, bothRing)).byKey).toEqual(before.byKey);

    // Workers already run with the new ring (the new key prepended), as a deployment would.
    const workerDeps = { ...h.deps, keyRing: bothRing };
    const refreshes = Promise.all(
      refreshable.map(({ connection }) =>
        refreshConnection(workerDeps, { connectionId: connection.id, source: "worker" }),
      ),
    );
    const [result] = await Promise.all([
      rotateCiphertexts(h.prisma, h.deps.parked, bothRing, { batchSize: 500 }),
      refreshes,
    ]);
    expect(result.failed).toEqual([]);

    const after = await keyStatus(h.prisma, h.deps.parked, bothRing);
    expect(after.byKey.test).toBe(0);
    expect(after.unusedKeys).toEqual(["test"]);

    // Old key removed ("restart"): every row opens, and every refresh kept its tokens.
    const rows = await h.prisma.connection.findMany();
    let decryptErrors = 0;
    for (const row of rows) {
      try {
        openAccessToken(newOnly, row.id, row.accessToken);
        if (row.refreshToken) openRefreshToken(newOnly, row.id, row.refreshToken);
      } catch {
        decryptErrors++;
      }
    }
    expect(decryptErrors).toBe(0);
    let lost = 0;
    for (const { connection, grant } of refreshable) {
      const row = rows.find((r) => r.id === connection.id);
      const current = h.provider.grant(grant.grantId);
      if (
        !row?.refreshToken ||
        openRefreshToken(newOnly, row.id, row.refreshToken) !== current?.refreshToken
      ) {
        lost++;
      }
    }
    expect(lost).toBe(0);
    const events = await h.prisma.connectionEvent.count({ where: { type: "reencrypted" } });
    expect(events).toBe(result.rotated - 1);

    // Idempotent: nothing left to do.
    expect((await rotateCiphertexts(h.prisma, h.deps.parked, newOnly)).rotated).toBe(0);
  }, 120_000);

  it("resumes after a stop, and reports a missing key by row id", async () => {
    const ring = KeyRing.fromSpec(`${generateEncryptionKey("third")},${newKey}`);
    const stop = new AbortController();
    const first = await rotateCiphertexts(h.prisma, h.deps.parked, ring, {
      batchSize: 100,
      signal: stop.signal,
      onProgress: () => stop.abort(),
    });
    expect(first).toMatchObject({ stopped: true, rotated: 100 });
    expect((await keyStatus(h.prisma, h.deps.parked, ring)).byKey.third).toBe(200);

    const { connection } = await h.addConnection();
    const gone = KeyRing.fromSpec(generateEncryptionKey("gone"));
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: {
        accessToken: sealAccessToken(ring, connection.id, "at"),
        refreshToken: sealRefreshToken(gone, connection.id, "rt"),
      },
    });
    const status = await keyStatus(h.prisma, h.deps.parked, ring);
    expect(status.missing).toEqual([
      {
        column: "connections.refreshToken",
        id: connection.id,
        keyId: "gone",
        error: "UnknownKeyError",
      },
    ]);

    const second = await rotateCiphertexts(h.prisma, h.deps.parked, ring);
    expect(second.stopped).toBe(false);
    expect(second.failed).toEqual([
      {
        column: "connections.refreshToken",
        id: connection.id,
        keyId: "gone",
        error: "UnknownKeyError",
      },
    ]);
    const after = await keyStatus(h.prisma, h.deps.parked, ring);
    expect(after.byKey.new).toBe(0);
    expect(after.unusedKeys).toEqual(["new"]);
  }, 120_000);

  it("re-seals a row's readable values when another of its values cannot be opened", async () => {
    const previous = generateEncryptionKey("previous");
    const before = KeyRing.fromSpec(previous);
    const ring = KeyRing.fromSpec(`${generateEncryptionKey("fourth")},${previous}`);
    const { connection } = await h.addConnection();
    // The access token column holds the refresh token's ciphertext: bound to the other
    // column, it does not open as an access token.
    const refreshToken = sealRefreshToken(before, connection.id, "rt-kept");
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { accessToken: refreshToken, refreshToken },
    });
    const result = await rotateCiphertexts(h.prisma, h.deps.parked, ring);
    expect(result.failed).toContainEqual({
      column: "connections.accessToken",
      id: connection.id,
      keyId: "previous",
      error: "TamperedCiphertextError",
    });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row.refreshToken?.startsWith("ev1.fourth.")).toBe(true);
    expect(openRefreshToken(ring, connection.id, row.refreshToken ?? "")).toBe("rt-kept");
    expect(row.accessToken).toBe(refreshToken);
  }, 60_000);
});
