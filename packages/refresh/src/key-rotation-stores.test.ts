import { randomUUID } from "node:crypto";
import { generateEncryptionKey, KeyRing, parseEncryptionKeys } from "@evergreen/crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyStatus, rotateCiphertexts } from "./key-rotation";
import { refreshConnection } from "./refresh-connection";
import { createRefreshHarness, type RefreshHarness, successfulRefresh } from "./testing";
import { openAccessToken, openRefreshToken, sealRefreshToken } from "./token-cipher";

// The sealed values outside the tables of connections and integrations: a deleted
// connection's token kept for its revocation, and the answers parked in Redis.
let h: RefreshHarness;
let both: KeyRing;
let newOnly: KeyRing;

beforeAll(async () => {
  h = await createRefreshHarness();
  const newKey = generateEncryptionKey("new");
  both = KeyRing.fromSpec(`${newKey},${h.encryptionKeys}`);
  newOnly = new KeyRing(parseEncryptionKeys(newKey));
}, 60_000);
afterAll(() => h?.close());

describe("key rotation beyond connections", () => {
  it("counts and re-seals pending revocations and parked answers, so the old key can go", async () => {
    // A deleted connection whose grant is still to revoke: its refresh token, copied as is.
    const { connection: deleted, grant } = await h.addConnection();
    await h.prisma.pendingRevocation.create({
      data: {
        id: randomUUID(),
        connectionId: deleted.id,
        integrationId: deleted.integrationId,
        token: deleted.refreshToken ?? "",
        tokenType: "refresh_token",
        giveUpAt: new Date(Date.now() + 3_600_000),
      },
    });
    await h.prisma.connection.delete({ where: { id: deleted.id } });
    // A provider's answer that PostgreSQL could not take, parked under the old key.
    const { connection: waiting } = await h.addConnection();
    const answer = successfulRefresh(waiting, {
      refreshToken: sealRefreshToken(h.keyRing, waiting.id, "parked-refresh"),
    });
    await h.deps.parked.park(
      { id: waiting.id, version: waiting.version },
      answer.change,
      answer.event,
    );

    const before = await keyStatus(h.prisma, h.deps.parked, both);
    expect(before.counts).toEqual(
      expect.arrayContaining([
        { column: "pending_revocations.token", keyId: "test", count: 1 },
        { column: "parked_answers", keyId: "test", count: 2 },
      ]),
    );
    const dry = await rotateCiphertexts(h.prisma, h.deps.parked, both, { dryRun: true });
    expect(dry.failed).toEqual([]);
    expect((await keyStatus(h.prisma, h.deps.parked, both)).byKey).toEqual(before.byKey);

    const result = await rotateCiphertexts(h.prisma, h.deps.parked, both);
    expect(result.failed).toEqual([]);
    const after = await keyStatus(h.prisma, h.deps.parked, both);
    expect(after.byKey.test).toBe(0);
    expect(after.unusedKeys).toEqual(["test"]);

    // The old key removed: the revocation still opens its token, and the parked answer is
    // stored by the next refresh, its refresh token readable.
    const pending = await h.prisma.pendingRevocation.findFirstOrThrow({
      where: { connectionId: deleted.id },
    });
    expect(openRefreshToken(newOnly, deleted.id, pending.token)).toBe(grant.refreshToken);
    const run = await refreshConnection(
      { ...h.deps, keyRing: newOnly },
      { connectionId: waiting.id, source: "worker" },
    );
    expect(run).toMatchObject({ kind: "done", outcome: "success" });
    const stored = await h.prisma.connection.findUniqueOrThrow({ where: { id: waiting.id } });
    expect(openRefreshToken(newOnly, waiting.id, stored.refreshToken ?? "")).toBe("parked-refresh");
    expect(openAccessToken(newOnly, waiting.id, stored.accessToken)).toBeTruthy();
  });

  it("leaves a parked answer a refresh parked again meanwhile as that refresh left it", async () => {
    const { connection } = await h.addConnection();
    const first = successfulRefresh(connection);
    const fence = { id: connection.id, version: connection.version };
    await h.deps.parked.park(fence, first.change, first.event);
    const newer = successfulRefresh(connection, {
      refreshToken: sealRefreshToken(h.keyRing, connection.id, "newer-refresh"),
    });

    const outcome = await h.deps.parked.resealTokens(connection.id, (field, sealed) => {
      // Between the rotation's read and its write, a refresh parks a newer answer.
      if (field === "accessToken") void h.deps.parked.park(fence, newer.change, newer.event);
      return both.encrypt(
        both.decrypt(sealed, ctx(connection.id, field)),
        ctx(connection.id, field),
      );
    });
    expect(outcome).toBe("fenced");
    const kept = await h.deps.parked.take(connection.id);
    expect(openRefreshToken(h.keyRing, connection.id, kept?.change.refreshToken ?? "")).toBe(
      "newer-refresh",
    );
    expect(await h.redis.pttl(`${h.prefix}:parked:${connection.id}`)).toBeGreaterThan(0);

    // The next pass re-seals it, expiry kept.
    const again = await rotateCiphertexts(h.prisma, h.deps.parked, both);
    expect(again.failed).toEqual([]);
    const resealed = await h.deps.parked.take(connection.id);
    expect(openRefreshToken(newOnly, connection.id, resealed?.change.refreshToken ?? "")).toBe(
      "newer-refresh",
    );
    expect(await h.redis.pttl(`${h.prefix}:parked:${connection.id}`)).toBeGreaterThan(0);
  });
});

const ctx = (rowId: string, field: string) => ({ entity: "connection", rowId, field });
