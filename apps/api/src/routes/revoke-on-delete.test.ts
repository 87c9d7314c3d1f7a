import { Writable } from "node:stream";
import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import { createLogger } from "@evergreen/observability";
import {
  createRevocationQueue,
  type RevocationDeps,
  type RevocationJobPayload,
  revokeGrant,
} from "@evergreen/refresh";
import {
  changedAfterRead,
  createRefreshHarness,
  metricValue,
  type RefreshHarness,
} from "@evergreen/refresh/testing";
import type { Queue } from "bullmq";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AUTH, testMetrics, testServer } from "../test-server";
import { TokenService } from "../token-service";
import { deleteConnection, registerConnectionRoutes } from "./connections";

let h: RefreshHarness;
let queue: Queue<RevocationJobPayload>;
let deps: RevocationDeps;
const logLines: string[] = [];

beforeAll(async () => {
  // DB 0, kept apart by the harness's prefix (DB 3 is test/key-rotation.test.ts's, which
  // flushes it).
  h = await createRefreshHarness();
  queue = createRevocationQueue(h.redis, `${h.prefix}:revocations`);
  const log = createLogger(
    { name: "revoke-test", level: "debug" },
    new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );
  deps = {
    prisma: h.prisma,
    keyRing: h.keyRing,
    egress: h.deps.egress,
    queue,
    metrics: h.metrics,
    log,
    settings: h.deps.settings,
  };
});

afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  await h?.close();
});

beforeEach(() => {
  h.provider.latencyMs = 0;
});

function server() {
  const metrics = testMetrics();
  return testServer({
    metrics,
    log: deps.log,
    routes: [
      (app) =>
        registerConnectionRoutes(app, {
          prisma: h.prisma,
          refresh: h.deps,
          tokens: new TokenService(h.deps, h.prisma, metrics.http),
          revocations: queue,
        }),
    ],
  });
}

/** A connection of an integration whose provider revokes at the mock's RFC 7009 endpoint. */
async function revocableConnection() {
  const added = await h.addConnection({ integrationKey: "revocable" });
  await h.prisma.integration.update({
    where: { id: added.connection.integrationId },
    data: { revocationUrl: h.provider.revocationUrl },
  });
  return added;
}

async function jobsFor(revocationId: string) {
  const jobs = await queue.getJobs(["waiting", "delayed", "prioritized"]);
  return jobs.filter((job) => job.data.revocationId === revocationId);
}

async function pendingOf(connectionId: string) {
  return h.prisma.pendingRevocation.findMany({ where: { connectionId } });
}

/** DELETE /v1/connections/:id as a caller sends it; the id of the revocation it recorded. */
async function deleteThroughApi(connectionId: string): Promise<string> {
  const app = await server();
  await app.inject({ method: "DELETE", url: `/v1/connections/${connectionId}`, headers: AUTH });
  await app.close();
  const [pending] = await pendingOf(connectionId);
  return pending?.id ?? "";
}

const revokeRequests = () => h.provider.received.filter(({ path }) => path === "/revoke");

describe("DELETE /v1/connections/:id revokes the grant at the provider", () => {
  it("revokes the tokens the row holds when deleted, not those read before: a refresh may have rotated them", async () => {
    const { connection } = await revocableConnection();
    const rotated = (await h.addConnection({ integrationKey: "revocable" })).connection;
    // Between the delete's read and its transaction, a refresh stores new tokens (sealed
    // ciphertexts stand in: another row's, as good as any for what gets copied).
    const racing = changedAfterRead(h.prisma, "connection", () =>
      h.prisma.connection.update({
        where: { id: connection.id },
        data: { refreshToken: rotated.refreshToken, accessToken: rotated.accessToken },
      }),
    );
    expect(
      await deleteConnection(
        { prisma: racing, refresh: h.deps, revocations: queue },
        connection.id,
        {
          revoke: true,
        },
      ),
    ).toBe(true);
    const [pending] = await pendingOf(connection.id);
    expect(pending?.token).toBe(rotated.refreshToken);
  });

  it("answers 204 without waiting on a slow provider; the worker then revokes the grant", async () => {
    const { connection, grant } = await revocableConnection();
    // Any call to the provider during the delete would take 30 s: the inject would time out.
    h.provider.latencyMs = 30_000;
    const sent = revokeRequests().length;
    const app = await server();
    const deleted = await app.inject({
      method: "DELETE",
      url: `/v1/connections/${connection.id}`,
      headers: AUTH,
    });
    await app.close();
    expect(deleted.statusCode).toBe(204);
    expect(revokeRequests()).toHaveLength(sent);
    expect(await h.prisma.connection.findUnique({ where: { id: connection.id } })).toBeNull();

    // The job names the PostgreSQL row; the row holds the token sealed, as it was stored.
    const [pending] = await pendingOf(connection.id);
    expect(pending?.token).toBe(connection.refreshToken);
    expect(pending?.tokenType).toBe("refresh_token");
    const [job] = await jobsFor(pending?.id ?? "");
    expect(job?.data).toEqual({ revocationId: pending?.id, attempt: 0 });
    expect(JSON.stringify(job?.data)).not.toContain(grant.refreshToken);

    h.provider.latencyMs = 0;
    const before = await metricValue(h.metrics.revocationsTotal, {
      provider: "oauth2",
      outcome: "revoked",
    });
    expect(await revokeGrant(deps, job?.data as RevocationJobPayload)).toEqual({
      kind: "done",
      outcome: "revoked",
    });
    const request = revokeRequests().at(-1);
    expect(request?.params).toEqual({
      token: grant.refreshToken,
      token_type_hint: "refresh_token",
    });
    expect(request?.clientAuth).toBe("basic");
    expect(h.provider.grant(grant.grantId)?.revoked).toBe(true);
    expect(h.provider.isAccessTokenValid(grant.accessToken)).toBe(false);
    expect(await pendingOf(connection.id)).toEqual([]);
    const events = await h.prisma.connectionEvent.findMany({
      where: { connectionId: connection.id },
      orderBy: { id: "asc" },
    });
    expect(events.map(({ type, outcome }) => [type, outcome])).toEqual([
      ["deleted", null],
      ["revoked", "revoked"],
    ]);
    expect(
      await metricValue(h.metrics.revocationsTotal, { provider: "oauth2", outcome: "revoked" }),
    ).toBe(before + 1);

    // A second run of the same job (a stalled job's retry) sends nothing.
    expect(await revokeGrant(deps, job?.data as RevocationJobPayload)).toEqual({ kind: "stale" });

    // No token anywhere on record: events, webhook events, logs.
    const webhookEvents = await h.prisma.webhookEvent.findMany({
      where: { connectionId: connection.id },
    });
    const record = JSON.stringify({ events, webhookEvents, logLines }, (_key, value) =>
      typeof value === "bigint" ? String(value) : value,
    );
    expect(logLines.length).toBeGreaterThan(0);
    for (const secret of [grant.refreshToken, grant.accessToken, h.provider.clientSecret]) {
      expect(record).not.toContain(secret);
    }
  });

  it("honours 503 with Retry-After (RFC 7009 §2.2.1), then succeeds", async () => {
    const { connection, grant } = await revocableConnection();
    const revocationId = await deleteThroughApi(connection.id);

    h.provider.failNextRevocation(1, { status: 503, retryAfter: "7" });
    expect(await revokeGrant(deps, { revocationId, attempt: 0 })).toEqual({
      kind: "retry",
      delayMs: 7_000,
    });
    expect(h.provider.grant(grant.grantId)?.revoked).toBe(false);
    // The attempt-0 job is still queued: this test runs attempts itself, not a worker.
    const next = (await jobsFor(revocationId)).find(({ data }) => data.attempt === 1);
    expect(next?.data).toEqual({ revocationId, attempt: 1 });
    expect(next?.opts.delay).toBe(7_000);

    expect(await revokeGrant(deps, { revocationId, attempt: 1 })).toEqual({
      kind: "done",
      outcome: "revoked",
    });
    expect(h.provider.grant(grant.grantId)?.revoked).toBe(true);
  });

  it("never retries sooner than the backoff, whatever Retry-After says (0, a date past)", async () => {
    const { connection } = await revocableConnection();
    const revocationId = await deleteThroughApi(connection.id);
    h.provider.failNextRevocation(2, { status: 503, retryAfter: "0" });
    const jittered = { ...deps, random: () => 0 };
    expect(await revokeGrant(jittered, { revocationId, attempt: 0 })).toEqual({
      kind: "retry",
      delayMs: 500,
    });
    expect(await revokeGrant(jittered, { revocationId, attempt: 1 })).toEqual({
      kind: "retry",
      delayMs: 1_000,
    });
  });

  it("backs off with jitter when the provider gives no Retry-After, and gives up in time", async () => {
    const { connection } = await revocableConnection();
    const revocationId = await deleteThroughApi(connection.id);

    h.provider.failNextRevocation(2, { status: 500 });
    const jittered = { ...deps, random: () => 0 };
    // retryBaseDelayMs 1 s, attempt 1, jitter at its floor (half).
    expect(await revokeGrant(jittered, { revocationId, attempt: 0 })).toEqual({
      kind: "retry",
      delayMs: 500,
    });
    // Past giveUpAt, the next failure is the last: recorded, the row gone.
    const late = { ...deps, now: () => new Date(Date.now() + 25 * 3_600_000) };
    expect(await revokeGrant(late, { revocationId, attempt: 1 })).toEqual({
      kind: "done",
      outcome: "gave_up",
    });
    const last = await h.prisma.connectionEvent.findFirst({
      where: { connectionId: connection.id },
      orderBy: { id: "desc" },
    });
    expect([last?.type, last?.outcome, last?.errorCode]).toEqual([
      "revocation_failed",
      "gave_up",
      "http_500",
    ]);
    expect(await pendingOf(connection.id)).toEqual([]);
  });

  it("counts a token the provider no longer knows (400 invalid_token) as revoked", async () => {
    const { connection } = await revocableConnection();
    const app = await server();
    await app.inject({ method: "DELETE", url: `/v1/connections/${connection.id}`, headers: AUTH });
    await app.close();
    const [pending] = await pendingOf(connection.id);
    h.provider.failNextRevocation(1, { status: 400, error: "invalid_token" });
    expect(await revokeGrant(deps, { revocationId: pending?.id ?? "", attempt: 0 })).toEqual({
      kind: "done",
      outcome: "already_dead",
    });
  });

  it("gives a claimed attempt back when it fails midway, so the job's retry still revokes", async () => {
    const { connection, grant } = await revocableConnection();
    const revocationId = await deleteThroughApi(connection.id);

    // Redis away when the next attempt is queued: the worker puts this job back (same id,
    // same attempt) and runs it again.
    const redisDown = new Error("Connection is closed.");
    const failingQueue = Object.create(queue, {
      add: { value: () => Promise.reject(redisDown) },
    }) as Queue<RevocationJobPayload>;
    h.provider.failNextRevocation(1, { status: 503, retryAfter: "7" });
    await expect(
      revokeGrant({ ...deps, queue: failingQueue }, { revocationId, attempt: 0 }),
    ).rejects.toBe(redisDown);
    expect((await pendingOf(connection.id))[0]?.attempts).toBe(0);

    expect(await revokeGrant(deps, { revocationId, attempt: 0 })).toEqual({
      kind: "done",
      outcome: "revoked",
    });
    expect(h.provider.grant(grant.grantId)?.revoked).toBe(true);
  });

  it("retries a token whose key left the ring until giveUpAt, then records gave_up", async () => {
    const { connection } = await revocableConnection();
    const revocationId = await deleteThroughApi(connection.id);
    const sent = revokeRequests().length;

    // The ring without the key that sealed the token: no exception for the worker to
    // retry every few seconds, a backoff an operator can put the key back within.
    const newKeyOnly = { ...deps, keyRing: KeyRing.fromSpec(generateEncryptionKey("new")) };
    expect(
      await revokeGrant({ ...newKeyOnly, random: () => 0 }, { revocationId, attempt: 0 }),
    ).toEqual({
      kind: "retry",
      delayMs: 500,
    });
    const late = { ...newKeyOnly, now: () => new Date(Date.now() + 25 * 3_600_000) };
    expect(await revokeGrant(late, { revocationId, attempt: 1 })).toEqual({
      kind: "done",
      outcome: "gave_up",
    });
    expect(revokeRequests()).toHaveLength(sent);
    const last = await h.prisma.connectionEvent.findFirst({
      where: { connectionId: connection.id },
      orderBy: { id: "desc" },
    });
    expect([last?.type, last?.outcome, last?.errorCode]).toEqual([
      "revocation_failed",
      "gave_up",
      "undecryptable",
    ]);
  });

  it("?revoke=false erases locally and sends nothing", async () => {
    const { connection, grant } = await revocableConnection();
    const app = await server();
    const deleted = await app.inject({
      method: "DELETE",
      url: `/v1/connections/${connection.id}?revoke=false`,
      headers: AUTH,
    });
    await app.close();
    expect(deleted.statusCode).toBe(204);
    expect(await pendingOf(connection.id)).toEqual([]);
    expect(await h.prisma.connection.findUnique({ where: { id: connection.id } })).toBeNull();
    expect(h.provider.grant(grant.grantId)?.revoked).toBe(false);
  });

  it("queues nothing for a provider without revocation", async () => {
    // The harness's generic integration has no revocationUrl.
    const { connection } = await h.addConnection();
    const waiting = await queue.getJobCounts("waiting", "delayed");
    const app = await server();
    const deleted = await app.inject({
      method: "DELETE",
      url: `/v1/connections/${connection.id}`,
      headers: AUTH,
    });
    await app.close();
    expect(deleted.statusCode).toBe(204);
    expect(await pendingOf(connection.id)).toEqual([]);
    expect(await queue.getJobCounts("waiting", "delayed")).toEqual(waiting);
  });

  it("refuses ?revoke= other than true or false", async () => {
    const { connection } = await revocableConnection();
    const app = await server();
    const response = await app.inject({
      method: "DELETE",
      url: `/v1/connections/${connection.id}?revoke=no`,
      headers: AUTH,
    });
    await app.close();
    expect(response.statusCode).toBe(400);
  });
});
