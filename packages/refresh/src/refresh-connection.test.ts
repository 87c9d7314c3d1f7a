import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { Writable } from "node:stream";
import { generateEncryptionKey, KeyRing, UnknownKeyError } from "@evergreen/crypto";
import { EgressClient, parseEgressAllowlist } from "@evergreen/egress";
import { createLogger } from "@evergreen/observability";
import { RedisLock } from "@evergreen/redis";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { refreshJobId } from "./jobs";
import type { ParkedAnswers } from "./parked-answers";
import { refreshConnection } from "./refresh-connection";
import {
  createRefreshHarness,
  metricValue,
  type RefreshHarness,
  successfulRefresh,
} from "./testing";
import {
  openAccessToken,
  openRefreshToken,
  sealAccessToken,
  sealClientSecret,
  sealRefreshToken,
} from "./token-cipher";

let h: RefreshHarness;
beforeEach(async () => {
  h = await createRefreshHarness({ timeoutMs: 300, unknownRetryLimit: 3 });
});
afterEach(() => h.close());

const refresh = (connectionId: string, expectedVersion?: number) =>
  refreshConnection(h.deps, { connectionId, expectedVersion, source: "worker" });

async function eventsOf(connectionId: string) {
  return h.prisma.connectionEvent.findMany({ where: { connectionId }, orderBy: { id: "asc" } });
}

describe("refreshConnection outcomes", () => {
  it("success: stores the rotated tokens encrypted, bumps the version, schedules the next job", async () => {
    const { connection, grant } = await h.addConnection({ rotate: true });
    const run = await refresh(connection.id, 0);
    expect(run).toMatchObject({ kind: "done", outcome: "success" });

    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    const current = h.provider.grant(grant.grantId);
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(current?.refreshToken);
    expect(openAccessToken(h.keyRing, row.id, row.accessToken)).toBe(current?.accessToken);
    expect(row.refreshToken).not.toContain(current?.refreshToken);
    expect(row).toMatchObject({
      status: "active",
      version: 1,
      refreshCount: 1,
      consecutiveFailures: 0,
      consecutiveUnknown: 0,
    });
    expect(row.nextRefreshAt?.getTime()).toBeLessThan(row.expiresAt?.getTime() ?? 0);

    const job = await h.queue.getJob(refreshJobId({ connectionId: row.id, version: 1 }));
    expect(await job?.getState()).toBe("delayed");
    expect((await eventsOf(row.id)).map((e) => [e.type, e.outcome])).toEqual([
      ["refreshed", "success"],
    ]);
  });

  it("success without refresh_token: keeps the stored one", async () => {
    const { connection, grant } = await h.addConnection({ omitRefreshToken: true });
    await refresh(connection.id);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(grant.refreshToken);
    expect(row.refreshCount).toBe(1);
  });

  it("counts outcomes by integration too, apart for two integrations of one provider", async () => {
    const { integrationRefreshTotal, refreshTotal } = h.metrics;
    const before = await metricValue(refreshTotal, { provider: "oauth2", outcome: "success" });
    for (const integrationKey of ["mock", "mock-two", "mock-two"]) {
      await refresh((await h.addConnection({ integrationKey })).connection.id);
    }
    const success = (integration: string) =>
      metricValue(integrationRefreshTotal, { integration, outcome: "success" });
    expect(await success("mock-two")).toBe(2);
    expect(await metricValue(refreshTotal, { provider: "oauth2", outcome: "success" })).toBe(
      before + 3,
    );
  });

  it("invalid_grant: needs_reauth, no further job, never retried", async () => {
    const { connection, grant } = await h.addConnection();
    h.provider.revoke(grant.refreshToken);
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "invalid_grant" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({
      status: "needs_reauth",
      nextRefreshAt: null,
      lastErrorCode: "invalid_grant",
    });
    expect(await h.queue.getJobCounts("delayed", "wait")).toEqual({ delayed: 0, wait: 0 });
    const requests = h.provider.requests;
    expect(await refresh(connection.id)).toEqual({ kind: "skipped", reason: "needs_reauth" });
    expect(h.provider.requests).toBe(requests);
    expect((await eventsOf(row.id)).map((e) => e.type)).toEqual(["needs_reauth"]);
  });

  it("logs a stopped connection at warn, since someone must act on it, and other outcomes at info, with their error code", async () => {
    const lines: { level: string; msg: string; status?: string; errorCode?: string }[] = [];
    const log = createLogger(
      { name: "test" },
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(JSON.parse(String(chunk)));
          done();
        },
      }),
    );
    const { connection, grant } = await h.addConnection();
    const run = () =>
      refreshConnection({ ...h.deps, log }, { connectionId: connection.id, source: "worker" });
    await run();
    h.provider.failNext(1, { status: 503 }, { grantId: grant.grantId });
    await run();
    h.provider.failNext(1, { status: 429, retryAfter: "1" }, { grantId: grant.grantId });
    await run();
    await h.redis.del(...(await h.redis.keys(`${h.prefix}:cooldown:*`)));
    h.provider.revoke(h.provider.grant(grant.grantId)?.refreshToken ?? "");
    await run();
    expect(
      lines.map(({ level, msg, status, errorCode }) => [level, msg, status, errorCode]),
    ).toEqual([
      ["info", "refresh recorded", "active", undefined],
      ["info", "refresh recorded", "active", "http_503"],
      ["info", "refresh recorded", "active", "http_429"],
      ["warn", "refresh recorded", "needs_reauth", "invalid_grant"],
    ]);
  });

  it("keeps when the refresh token dies where the provider says (a GitHub App), for as long as that token is kept", async () => {
    const { connection } = await h.addConnection();
    const answer = (extra: Record<string, unknown>) =>
      h.provider.enqueue({
        status: 200,
        body: { access_token: "ghu_new", expires_in: 28800, token_type: "bearer", ...extra },
      });
    const refreshTokenExpiresAt = async () =>
      (await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } }))
        .refreshTokenExpiresAt;

    answer({ refresh_token: "ghr_1", refresh_token_expires_in: 15811200 });
    const before = Date.now();
    await refresh(connection.id, 0);
    const stated = await refreshTokenExpiresAt();
    expect(stated?.getTime()).toBeGreaterThanOrEqual(before + 15_811_200_000);
    expect(stated?.getTime()).toBeLessThanOrEqual(Date.now() + 15_811_200_000);

    answer({});
    await refresh(connection.id, 1);
    expect(await refreshTokenExpiresAt()).toEqual(stated);

    answer({ refresh_token: "ghr_2" });
    await refresh(connection.id, 2);
    expect(await refreshTokenExpiresAt()).toBeNull();
  });

  it("invalid_client: error status, no further job", async () => {
    const { connection } = await h.addConnection();
    h.provider.enqueue({ status: 401, error: "invalid_client" });
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "invalid_client" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({
      status: "error",
      nextRefreshAt: null,
      lastErrorCode: "invalid_client",
    });
    expect(await h.queue.getJobCounts("delayed")).toEqual({ delayed: 0 });
  });

  it("rate_limited: waits Retry-After, spends no version, and cools the whole integration", async () => {
    const first = await h.addConnection();
    const second = await h.addConnection();
    h.provider.enqueue({ status: 429, retryAfter: "7", error: "slow_down" });
    const run = await refresh(first.connection.id, 0);
    expect(run.kind).toBe("cooling_down");
    expect(run.kind === "cooling_down" && run.retryInMs).toBe(7_000);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: first.connection.id } });
    expect(row).toMatchObject({ status: "active", version: 0, lastErrorCode: "slow_down" });

    const requests = h.provider.requests;
    const held = await refresh(second.connection.id, 0);
    expect(held.kind).toBe("cooling_down");
    expect(held.kind === "cooling_down" && held.retryInMs).toBeGreaterThan(6_000);
    expect(h.provider.requests).toBe(requests);

    // Those held back do not all wake at the cooldown's end: a fifth of it (1.4 s) spreads them.
    const heldAt = async (random: number) => {
      const run = await refreshConnection(
        { ...h.deps, random: () => random },
        {
          connectionId: second.connection.id,
          expectedVersion: 0,
          source: "worker",
        },
      );
      return run.kind === "cooling_down" ? run.retryInMs : Number.NaN;
    };
    const latest = await heldAt(0.999);
    const earliest = await heldAt(0);
    expect(earliest).toBeLessThanOrEqual(7_000);
    expect(latest - earliest).toBeGreaterThan(1_000);
    expect(latest).toBeLessThanOrEqual(7_000 + 1_400);
  });

  it("rate_limited: the row says when the next try comes, no longer the past due time", async () => {
    const { connection } = await h.addConnection();
    const dueAt = new Date(Date.now() - 60_000);
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { nextRefreshAt: dueAt },
    });
    h.provider.enqueue({ status: 429, retryAfter: "120" });
    const before = Date.now();
    expect(await refresh(connection.id, 0)).toMatchObject({ kind: "cooling_down" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row.nextRefreshAt?.getTime()).toBeGreaterThanOrEqual(before + 120_000);
    expect(row.nextRefreshAt?.getTime()).toBeLessThanOrEqual(Date.now() + 120_000);
    // Not brought forward: a refresh asked for ahead of time keeps its schedule.
    const { connection: early } = await h.addConnection({ integrationKey: "not-cooling" });
    const scheduled = new Date(Date.now() + 3_000_000);
    await h.prisma.connection.update({
      where: { id: early.id },
      data: { nextRefreshAt: scheduled },
    });
    h.provider.enqueue({ status: 429, retryAfter: "120" });
    expect(await refresh(early.id, 0)).toMatchObject({ kind: "cooling_down" });
    const after = await h.prisma.connection.findUniqueOrThrow({ where: { id: early.id } });
    expect(after.nextRefreshAt).toEqual(scheduled);
    // Refreshed on demand only (no due time): none is made up.
    const { connection: onDemand } = await h.addConnection({ integrationKey: "on-demand" });
    expect(onDemand.nextRefreshAt).toBeNull();
    h.provider.enqueue({ status: 429, retryAfter: "120" });
    expect(await refresh(onDemand.id, 0)).toMatchObject({ kind: "cooling_down" });
    const still = await h.prisma.connection.findUniqueOrThrow({ where: { id: onDemand.id } });
    expect(still.nextRefreshAt).toBeNull();
  });

  it("rate_limited at a per-connection host (Shopify shops): cools that shop, not the others", async () => {
    // The catalog's own https://{shop}/... URL, each shop's requests routed to the mock.
    class ShopsAtTheMock extends EgressClient {
      override send(...[request, options]: Parameters<EgressClient["send"]>) {
        const shop = /^https:\/\/[a-z0-9-]+\.myshopify\.com\/admin\/oauth\/access_token$/;
        expect(request.url).toMatch(shop);
        return super.send({ ...request, url: h.provider.tokenUrl }, options);
      }
    }
    const egress = new ShopsAtTheMock({ allowLoopback: true });
    const deps = { ...h.deps, egress };
    const integrationId = crypto.randomUUID();
    await h.prisma.integration.create({
      data: {
        id: integrationId,
        key: "shops",
        provider: "shopify",
        clientId: h.provider.clientId,
        clientSecret: sealClientSecret(h.keyRing, integrationId, h.provider.clientSecret),
      },
    });
    const connectionAt = async (shop: string) => {
      const grant = h.provider.issueGrant();
      const id = crypto.randomUUID();
      await h.prisma.connection.create({
        data: {
          id,
          integrationId,
          externalId: `user-${id}`,
          accessToken: sealAccessToken(h.keyRing, id, grant.accessToken),
          refreshToken: sealRefreshToken(h.keyRing, id, grant.refreshToken),
          expiresAt: new Date(Date.now() + 3600_000),
          metadata: { shop },
        },
      });
      return { id, grant };
    };
    const limited = await connectionAt("acme.myshopify.com");
    const sameShop = await connectionAt("acme.myshopify.com");
    const otherShop = await connectionAt("other.myshopify.com");
    const run = (id: string) => refreshConnection(deps, { connectionId: id, source: "worker" });
    try {
      h.provider.failNext(
        1,
        { status: 429, retryAfter: "600" },
        { grantId: limited.grant.grantId },
      );
      expect(await run(limited.id)).toEqual({ kind: "cooling_down", retryInMs: 600_000 });
      expect(await run(sameShop.id)).toMatchObject({ kind: "cooling_down" });
      expect(await run(otherShop.id)).toMatchObject({ kind: "done", outcome: "success" });
    } finally {
      egress.close();
    }
  });

  it("success: keeps the provider values the answer states (Salesforce instance_url) over the metadata", async () => {
    const { connection } = await h.addConnection({ provider: "salesforce" });
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { metadata: { instance_url: "https://old.my.salesforce.com", team: "sales" } },
    });
    h.provider.enqueue({
      status: 200,
      body: {
        access_token: "at-moved",
        token_type: "Bearer",
        instance_url: "https://new.my.salesforce.com",
        id: "https://login.salesforce.com/id/00D/005",
      },
    });
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row.metadata).toEqual({
      instance_url: "https://new.my.salesforce.com",
      id: "https://login.salesforce.com/id/00D/005",
      team: "sales",
    });
  });

  it("rate_limited with Retry-After: 0 still waits the base delay", async () => {
    const { connection } = await h.addConnection();
    h.provider.enqueue({ status: 429, retryAfter: "0" });
    expect(await refresh(connection.id)).toEqual({ kind: "cooling_down", retryInMs: 1_000 });
  });

  it("rate_limited without Retry-After: the cooldown doubles at each retry refused again", async () => {
    const { connection } = await h.addConnection({ integrationKey: "unstated-429" });
    const integration = await h.prisma.integration.findUniqueOrThrow({
      where: { key: "unstated-429" },
    });
    const over = () =>
      vi.waitFor(async () => expect(await h.deps.cooldown.remainingMs(integration.id)).toBe(0), {
        timeout: 5_000,
        interval: 50,
      });
    for (const expected of [1_000, 2_000]) {
      h.provider.enqueue({ status: 429 });
      expect(await refresh(connection.id)).toEqual({ kind: "cooling_down", retryInMs: expected });
      await over();
    }
  });

  it("transient (5xx): retried with backoff, status stays active while the token is valid", async () => {
    const { connection } = await h.addConnection();
    h.provider.enqueue({ status: 503 });
    const before = Date.now();
    expect(await refresh(connection.id, 0)).toMatchObject({ kind: "done", outcome: "transient" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "active", version: 1, consecutiveFailures: 1 });
    const delay = (row.nextRefreshAt?.getTime() ?? 0) - before;
    expect(delay).toBeGreaterThanOrEqual(500);
    expect(delay).toBeLessThan(60_000);
    expect(await h.queue.getJob(refreshJobId({ connectionId: row.id, version: 1 }))).toBeTruthy();
  });

  it("transient (503 with Retry-After): retried no sooner than the provider asked", async () => {
    const { connection } = await h.addConnection({ expiresInSeconds: 3_600 });
    h.provider.enqueue({ status: 503, retryAfter: "120" });
    const before = Date.now();
    expect(await refresh(connection.id, 0)).toMatchObject({ kind: "done", outcome: "transient" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "active", consecutiveFailures: 1 });
    // The first failure's backoff alone is at most RETRY_BASE_DELAY_MS (1 s).
    expect(row.nextRefreshAt?.getTime()).toBeGreaterThanOrEqual(before + 120_000);

    // Never longer than RETRY_MAX_DELAY_MS (300 s here), whatever the provider states.
    h.provider.enqueue({ status: 503, retryAfter: "3600" });
    const asked = Date.now();
    await refresh(connection.id, row.version);
    const held = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(held.consecutiveFailures).toBe(2);
    expect(held.nextRefreshAt?.getTime()).toBeGreaterThanOrEqual(asked + 300_000);
    expect(held.nextRefreshAt?.getTime()).toBeLessThanOrEqual(Date.now() + 300_000);
  });

  it("transient: a token that expires before the backoff ends is retried when it expires", async () => {
    const { connection } = await h.addConnection({ expiresInSeconds: 2 });
    h.provider.failNext(2, { status: 503 });
    // The backoff's jitter at its top: 1 s base, the fifth failure's 16 s.
    const deps = { ...h.deps, random: () => 0.999 };
    const failed = await h.prisma.connection.update({
      where: { id: connection.id },
      data: { consecutiveFailures: 4, lastErrorAt: new Date() },
    });
    await refreshConnection(deps, { connectionId: connection.id, source: "worker" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "active", consecutiveFailures: 5 });
    expect(row.nextRefreshAt).toEqual(failed.expiresAt);
    expect(
      await h.queue.getJob(refreshJobId({ connectionId: row.id, version: row.version })),
    ).toBeTruthy();
  });

  it("transient (timeout) on an expired token: status expired, still scheduled", async () => {
    const { connection } = await h.addConnection({ expiresInSeconds: -10 });
    h.provider.enqueue({ hang: true });
    const run = await refresh(connection.id);
    expect(run).toMatchObject({ kind: "done", outcome: "transient" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "expired", lastErrorCode: "timeout" });
    expect(row.nextRefreshAt).not.toBeNull();
  });

  it("unknown: retried a bounded number of times, then error with the body's code", async () => {
    const { connection } = await h.addConnection();
    h.provider.failNext(3, { status: 400, error: "invalid_scope" });
    for (const expected of ["active", "active", "error"]) {
      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
      expect(await refresh(connection.id, row.version)).toMatchObject({ outcome: "unknown" });
      const after = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
      expect(after).toMatchObject({ status: expected, lastErrorCode: "invalid_scope" });
    }
  });

  it("unknown after an outage's transient failures: still retried, only unknowns in a row count", async () => {
    const { connection } = await h.addConnection();
    // Five 503s, then a load balancer's HTML page, then the outage is over.
    h.provider.failNext(5, { status: 503 });
    h.provider.failNext(1, { status: 200, body: "<html>maintenance</html>" });
    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 7; attempt += 1) {
      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
      const run = await refresh(connection.id, row.version);
      outcomes.push(run.kind === "done" ? run.outcome : run.kind);
    }
    expect(outcomes).toEqual([...Array(5).fill("transient"), "unknown", "success"]);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "active", consecutiveFailures: 0, consecutiveUnknown: 0 });
  });

  it("never stores the access token or the Basic credentials a provider's error echoes", async () => {
    const { connection } = await h.addConnection({ integrationKey: "echoing" });
    // Shorter than the 40 characters a message's token-like words are cut at: only the
    // secrets list can catch them.
    const accessToken = "AT-short-77";
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { accessToken: sealAccessToken(h.keyRing, connection.id, accessToken) },
    });
    const { id: integrationId } = await h.prisma.integration.findUniqueOrThrow({
      where: { key: "echoing" },
    });
    await h.prisma.integration.update({
      where: { id: integrationId },
      data: { clientId: "cid", clientSecret: sealClientSecret(h.keyRing, integrationId, "cs-7") },
    });
    const credentials = Buffer.from("cid:cs-7").toString("base64");
    const authorization = `Basic ${credentials}`;
    h.provider.enqueue({
      status: 400,
      error: `weird_${accessToken}`,
      errorDescription: `got ${accessToken} with ${authorization}`,
    });
    expect(await refresh(connection.id)).toMatchObject({ outcome: "unknown" });
    expect(h.provider.received.at(-1)?.headers.authorization).toBe(authorization);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    const events = await eventsOf(connection.id);
    const said = [
      `${row.lastErrorCode} ${row.lastErrorMessage}`,
      ...events.map((event) => `${event.errorCode} ${event.message}`),
    ];
    expect(row.lastErrorMessage).toBe("got [redacted] with [redacted]");
    for (const secret of [accessToken, credentials]) expect(said.join(" ")).not.toContain(secret);
  });

  it("an error inside a 200 body is an error, not a token", async () => {
    const { connection } = await h.addConnection();
    h.provider.enqueue({ status: 200, body: { error: "invalid_grant" } });
    expect(await refresh(connection.id)).toMatchObject({ outcome: "invalid_grant" });
  });
});

describe("refreshConnection guards", () => {
  it("skips a job scheduled for another version", async () => {
    const { connection } = await h.addConnection();
    expect(await refresh(connection.id, 5)).toEqual({ kind: "skipped", reason: "rescheduled" });
    expect(h.provider.requests).toBe(0);
  });

  it("skips a deleted connection", async () => {
    const { connection } = await h.addConnection();
    await h.prisma.connection.delete({ where: { id: connection.id } });
    expect(await refresh(connection.id)).toEqual({ kind: "skipped", reason: "deleted" });
  });

  it("reports busy, without calling the provider, while another process holds the lock", async () => {
    const { connection } = await h.addConnection();
    const lease = await h.deps.lock.acquire(connection.id);
    const run = await refresh(connection.id);
    expect(run.kind).toBe("busy");
    expect(h.provider.requests).toBe(0);
    await lease?.release();
    expect(await refresh(connection.id)).toMatchObject({ outcome: "success" });
  });

  it("never sends one refresh token twice when Redis loses the lock mid-refresh: the PostgreSQL claim refuses the second", async () => {
    const { connection, grant } = await h.addConnection({ rotate: true });
    h.provider.latencyMs = 200;
    const first = refresh(connection.id, 0);
    // The provider has the first request (and has rotated the token) when the lock key goes.
    await vi.waitFor(() => expect(h.provider.requests).toBe(1), { interval: 5 });
    await h.redis.del(`${h.prefix}:lock:${connection.id}`);

    const second = await refresh(connection.id, 0);
    expect(second.kind).toBe("busy");
    expect(await first).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.requests).toBe(1);
    expect(h.provider.reuseCount).toBe(0);
    expect(h.provider.grant(grant.grantId)).toMatchObject({ refreshes: 1, revoked: false });
    // The stored answer ends the claim: the next version refreshes at once.
    expect(await refresh(connection.id, 1)).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.reuseCount).toBe(0);
  });

  it("lets a claim whose holder died run out, then refreshes", async () => {
    const { connection } = await h.addConnection({ rotate: true });
    // A holder that claimed and died: a claim that is still live, then one that has run out.
    const claim = { id: connection.id, version: 0, holder: "dead", mark: null, rotates: false };
    expect(await h.deps.store.claim({ ...claim, leaseMs: 60_000 })).not.toBeNull();
    expect(await refresh(connection.id, 0)).toEqual({ kind: "busy", retryInMs: 1_000 });
    expect(h.provider.requests).toBe(0);
    await h.prisma
      .$executeRaw`UPDATE connections SET "claimExpiresAt" = now() WHERE id = ${connection.id}::uuid`;
    expect(await refresh(connection.id, 0)).toMatchObject({ kind: "done", outcome: "success" });
  });

  it("drops a late answer rather than overwrite a newer token written meanwhile", async () => {
    const { connection } = await h.addConnection({ rotate: true });
    h.provider.latencyMs = 300;
    const late = refresh(connection.id, 0);
    await vi.waitFor(() => expect(h.provider.requests).toBe(1), { interval: 5 });
    // Another writer (its lease outlived ours) stores a newer token first.
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { accessToken: sealAccessToken(h.keyRing, connection.id, "newer"), version: 1 },
    });
    expect(await late).toEqual({ kind: "skipped", reason: "lost_race" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(openAccessToken(h.keyRing, row.id, row.accessToken)).toBe("newer");
    expect(row).toMatchObject({ version: 1, refreshCount: 0 });
  });

  it("counts a refresh whose process lacks the key its tokens are sealed under, and touches nothing", async () => {
    const { connection } = await h.addConnection();
    const otherRing = KeyRing.fromSpec(generateEncryptionKey("other"));
    const run = refreshConnection(
      { ...h.deps, keyRing: otherRing },
      { connectionId: connection.id, source: "worker" },
    );
    await expect(run).rejects.toBeInstanceOf(UnknownKeyError);
    expect(await metricValue(h.metrics.decryptionFailures, { source: "worker" })).toBe(1);
    expect(await metricValue(h.metrics.decryptionFailures, { source: "api" })).toBe(0);
    expect(h.provider.requests).toBe(0);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ version: 0, status: "active", consecutiveFailures: 0 });
  });

  it("parks a rotated answer it cannot store, and stores it on the next try without asking the provider again", async () => {
    const { connection, grant } = await h.addConnection({ rotate: true });
    // PostgreSQL refuses the write (its event table is gone) past the in-process retries.
    await h.prisma.$executeRawUnsafe("ALTER TABLE connection_events RENAME TO events_away");
    await expect(refresh(connection.id, 0)).rejects.toThrow(/connection_events/);
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
    const { parkedAnswersTotal, refreshInfraErrors } = h.metrics;
    expect(await metricValue(refreshInfraErrors, { dependency: "postgres" })).toBe(1);
    expect(await metricValue(refreshInfraErrors, { dependency: "redis" })).toBe(0);
    expect(await metricValue(parkedAnswersTotal, { action: "stored" })).toBe(1);
    expect(await h.deps.parked.count()).toBe(1);
    const unchanged = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(unchanged.version).toBe(0);

    await h.prisma.$executeRawUnsafe("ALTER TABLE events_away RENAME TO connection_events");
    expect(await refresh(connection.id, 0)).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
    expect(h.provider.reuseCount).toBe(0);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ version: 1, refreshCount: 1, status: "active" });
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(
      h.provider.grant(grant.grantId)?.refreshToken,
    );
    expect(await h.deps.parked.take(connection.id)).toBeNull();
    expect(await metricValue(parkedAnswersTotal, { action: "drained" })).toBe(1);
    expect(await metricValue(parkedAnswersTotal, { action: "stored" })).toBe(1);
    expect(await h.deps.parked.count()).toBe(0);
    // The next refresh sends the rotated token and works.
    expect(await refresh(connection.id, 1)).toMatchObject({ kind: "done", outcome: "success" });
    expect(h.provider.reuseCount).toBe(0);
  }, 20_000);

  it("drops a parked answer once the row has moved on (the app sent new tokens)", async () => {
    const { connection } = await h.addConnection();
    const { change, event } = successfulRefresh(connection);
    await h.deps.parked.park({ id: connection.id, version: 0 }, change, event);
    await h.prisma.connection.update({ where: { id: connection.id }, data: { version: 5 } });
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    expect(await h.deps.parked.take(connection.id)).toBeNull();
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row.version).toBe(6);
  });

  it("sends nothing under a claim granted too late to outlive the answer (a frozen process waking), and gives it back", async () => {
    const { connection } = await h.addConnection({ provider: "github", rotate: true });
    const { store } = h.deps;
    // Lease 1 s, timeout 300 ms: a claim that takes over 400 ms to arrive is not sent under.
    const lock = new RedisLock(h.redis, { prefix: `{late-claim-${connection.id}}`, ttlMs: 1_000 });
    const lateStore = {
      load: (id: string) => store.load(id),
      write: (...args: Parameters<typeof store.write>) => store.write(...args),
      releaseClaim: (...args: Parameters<typeof store.releaseClaim>) => store.releaseClaim(...args),
      claim: async (claim: Parameters<typeof store.claim>[0]) => {
        const held = await store.claim(claim);
        await new Promise((resolve) => setTimeout(resolve, 600));
        return held;
      },
    } as unknown as typeof store;
    const run = await refreshConnection(
      { ...h.deps, lock, store: lateStore },
      { connectionId: connection.id, source: "worker" },
    );
    expect(run).toEqual({ kind: "busy", retryInMs: 1_000 });
    expect(h.provider.requests).toBe(0);
    // Given back: the next try is an ordinary refresh, not one in doubt of a send never made.
    expect(await refresh(connection.id)).toMatchObject({ kind: "done", outcome: "success" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "active", inDoubtSince: null });
  });

  it("sends nothing when the lock is lost while an obsolete parked answer is dropped", async () => {
    const { connection } = await h.addConnection();
    const { change, event } = successfulRefresh(connection);
    await h.deps.parked.park({ id: connection.id, version: 0 }, change, event);
    await h.prisma.connection.update({ where: { id: connection.id }, data: { version: 5 } });
    let lockKey = "";
    const { lock, parked } = h.deps;
    const watchedLock = {
      ttlMs: lock.ttlMs,
      remainingMs: (resource: string) => lock.remainingMs(resource),
      acquire: async (resource: string) => {
        const lease = await lock.acquire(resource);
        lockKey = lease?.key ?? "";
        return lease;
      },
    } as unknown as RedisLock;
    const losingParked = {
      take: (id: string) => parked.take(id),
      drop: async (id: string) => {
        await parked.drop(id);
        // The lock is lost during this round trip (expiry after a pause, FLUSHALL, failover).
        await h.redis.del(lockKey);
      },
    } as unknown as ParkedAnswers;
    const run = await refreshConnection(
      { ...h.deps, lock: watchedLock, parked: losingParked },
      { connectionId: connection.id, source: "worker" },
    );
    expect(run).toEqual({ kind: "busy", retryInMs: 1_000 });
    expect(h.provider.requests).toBe(0);
  });
});

describe("refreshConnection egress", () => {
  /** Points the harness's integration (created by the first addConnection) at another URL. */
  const useTokenUrl = (tokenUrl: string) => h.prisma.integration.updateMany({ data: { tokenUrl } });

  it("cuts an endless answer at 64 KiB: unknown, recorded as response_too_large, retried with backoff", async () => {
    const { connection } = await h.addConnection();
    h.provider.enqueue({ endless: true });
    const before = Date.now();
    expect(await refresh(connection.id, 0)).toMatchObject({ kind: "done", outcome: "unknown" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({
      status: "active",
      consecutiveFailures: 1,
      lastErrorCode: "response_too_large",
    });
    expect((row.nextRefreshAt?.getTime() ?? 0) - before).toBeGreaterThanOrEqual(500);
  });

  it("refuses a token URL that leads to loopback when the policy does not allow it: egress_refused, retried with backoff, nothing sent", async () => {
    const { connection } = await h.addConnection();
    const strict = new EgressClient();
    try {
      const run = await refreshConnection(
        { ...h.deps, egress: strict },
        { connectionId: connection.id, source: "worker" },
      );
      expect(run).toMatchObject({ kind: "done", outcome: "transient" });
      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
      expect(row).toMatchObject({ status: "active", lastErrorCode: "egress_refused" });
      expect(row.nextRefreshAt?.getTime()).toBeGreaterThan(Date.now());
      expect(row.lastErrorMessage).toMatch(/EGRESS_ALLOWLIST/);
      expect(h.provider.requests).toBe(0);
    } finally {
      strict.close();
    }
  });

  it("refuses a name that resolves to loopback, and refreshes once EGRESS_ALLOWLIST covers it", async () => {
    const first = await h.addConnection();
    const second = await h.addConnection();
    await useTokenUrl(h.provider.tokenUrl.replace("127.0.0.1", "localhost"));
    const strict = new EgressClient();
    const allowlisted = new EgressClient({ allowlist: parseEgressAllowlist("localhost") });
    try {
      const refused = await refreshConnection(
        { ...h.deps, egress: strict },
        { connectionId: first.connection.id, source: "worker" },
      );
      expect(refused).toMatchObject({ kind: "done", outcome: "transient" });
      expect(h.provider.requests).toBe(0);
      const allowed = await refreshConnection(
        { ...h.deps, egress: allowlisted },
        { connectionId: second.connection.id, source: "worker" },
      );
      expect(allowed).toMatchObject({ kind: "done", outcome: "success" });
    } finally {
      strict.close();
      allowlisted.close();
    }
  });

  it("puts a rotating provider's refresh in doubt when its answer breaks off after it began", async () => {
    // The provider answered (and may have rotated the token); the body never fully came.
    const breaking = createServer((socket) => {
      socket.once("data", () => {
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"access_',
          () => socket.resetAndDestroy(),
        );
      });
    });
    breaking.listen(0, "127.0.0.1");
    await once(breaking, "listening");
    try {
      const { connection } = await h.addConnection({ provider: "github", rotate: true });
      await useTokenUrl(`http://127.0.0.1:${(breaking.address() as AddressInfo).port}/token`);
      expect(await refresh(connection.id)).toMatchObject({ outcome: "transient" });
      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
      expect(row).toMatchObject({ status: "needs_reauth", lastErrorCode: "in_doubt" });
      expect(row.inDoubtSince).not.toBeNull();
    } finally {
      await new Promise((resolve) => breaking.close(resolve));
    }
  });

  it("puts a rotating provider's refresh in doubt when its 2xx answer holds no readable token", async () => {
    const { connection } = await h.addConnection({ provider: "github", rotate: true });
    // The provider rotated the token, then its answer came cut short: valid HTTP, no JSON.
    h.provider.enqueue({
      status: 200,
      body: '{"access_token":"at-lost","refresh_token":"rt-lost"',
      applyRefresh: true,
    });
    expect(await refresh(connection.id)).toMatchObject({ outcome: "unknown" });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({
      status: "needs_reauth",
      lastErrorCode: "in_doubt",
      nextRefreshAt: null,
    });
    expect(row.inDoubtSince).not.toBeNull();
    // Not sent again: a rotated-away token revokes the grant.
    expect(await refresh(connection.id, row.version)).toMatchObject({ kind: "skipped" });
    expect(h.provider.reuses).toEqual([]);

    // A proxy's HTML page never reached the token endpoint: retried, as any unknown answer.
    const { connection: proxied } = await h.addConnection({ provider: "github", rotate: true });
    h.provider.enqueue({
      status: 200,
      body: "<html>Service temporarily unavailable</html>",
      headers: { "content-type": "text/html" },
    });
    expect(await refresh(proxied.id)).toMatchObject({ outcome: "unknown" });
    const retried = await h.prisma.connection.findUniqueOrThrow({ where: { id: proxied.id } });
    expect(retried).toMatchObject({ status: "active", inDoubtSince: null });
    expect(await refresh(proxied.id, retried.version)).toMatchObject({ outcome: "success" });
  });

  it("stores one generic code whether the port refuses or resets the connection", async () => {
    const resetting = createServer((socket) => socket.resetAndDestroy());
    resetting.listen(0, "127.0.0.1");
    await once(resetting, "listening");
    const closed = createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    try {
      const codes: (string | null)[] = [];
      for (const port of [closedPort, (resetting.address() as AddressInfo).port]) {
        const { connection } = await h.addConnection();
        await useTokenUrl(`http://127.0.0.1:${port}/token`);
        expect(await refresh(connection.id)).toMatchObject({ outcome: "transient" });
        const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
        codes.push(row.lastErrorCode);
        expect(row.lastErrorMessage).toBe("the token endpoint could not be reached");
      }
      expect(codes).toEqual(["unreachable", "unreachable"]);
    } finally {
      await new Promise((resolve) => resetting.close(resolve));
    }
  });
});
