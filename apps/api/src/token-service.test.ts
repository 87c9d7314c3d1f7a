import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import type { PrismaClient } from "@evergreen/db";
import { TOKEN_OUTCOMES } from "@evergreen/observability";
import {
  openRefreshToken,
  refreshConnection,
  refreshJobId,
  sealAccessToken,
} from "@evergreen/refresh";
import { createRefreshHarness, metricValue, type RefreshHarness } from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AUTH, connectionsTestServer, testMetrics } from "./test-server";
import { TokenService } from "./token-service";

let h: RefreshHarness;

beforeAll(async () => {
  h = await createRefreshHarness();
});
afterAll(() => h.close());

const server = () => connectionsTestServer(h);
const tokenOf = (id: string, query = "") =>
  server().then((app) => app.inject({ url: `/v1/connections/${id}/token${query}`, headers: AUTH }));
const refreshNow = (id: string) =>
  server().then((app) =>
    app.inject({ method: "POST", url: `/v1/connections/${id}/refresh`, headers: AUTH }),
  );
const refreshesOf = (grantId: string) => h.provider.grant(grantId)?.refreshes ?? 0;

/**
 * Holds the connection's lock as another process would, then asks for a token (by
 * `requestedId`, the connection's id unless given) and resolves once the request has met
 * the held lock.
 */
async function askWhileLocked(connectionId: string, requestedId = connectionId) {
  const lease = await h.deps.lock.acquire(connectionId);
  if (!lease) throw new Error("lock should be free");
  const contended = () =>
    h.metrics.lockContended
      .get()
      .then((m) => m.values.find(({ labels }) => labels.source === "api")?.value ?? 0);
  const before = await contended();
  const answer = tokenOf(requestedId);
  await vi.waitFor(async () => expect(await contended()).toBe(before + 1));
  return { lease, answer };
}

describe("GET /v1/connections/:id/token", () => {
  it("answers the stored token without calling the provider while it is valid long enough", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: 3600 });
    const response = await tokenOf(connection.id);
    expect(response.statusCode).toBe(200);
    expect(response.headers["cache-control"]).toBe("no-store");
    expect(response.json()).toEqual({
      accessToken: grant.accessToken,
      tokenType: "Bearer",
      expiresAt: connection.expiresAt?.toISOString(),
      scope: null,
    });
    expect(response.body).not.toContain(grant.refreshToken);
    expect(refreshesOf(grant.grantId)).toBe(0);
  });

  it("refreshes first when the token has less than minValidity left", async () => {
    const { connection, grant } = await h.addConnection({ rotate: true, expiresInSeconds: 600 });
    // 600 s left is plenty for the default 60 s, not for 900 s.
    expect((await tokenOf(connection.id)).json().accessToken).toBe(grant.accessToken);
    const fresh = (await tokenOf(connection.id, "?minValidity=900")).json();
    expect(refreshesOf(grant.grantId)).toBe(1);
    expect(fresh.accessToken).toBe(h.provider.grant(grant.grantId)?.accessToken);
    expect(fresh.accessToken).not.toBe(grant.accessToken);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ refreshCount: 1, version: 1, status: "active" });
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(
      h.provider.grant(grant.grantId)?.refreshToken,
    );
    // The refresh scheduled the next job.
    expect(await h.queue.getJob(refreshJobId({ connectionId: row.id, version: 1 }))).toBeTruthy();
  });

  it("20 concurrent callers on an expiring connection cause exactly one provider call", async () => {
    h.provider.latencyMs = 100; // keep the refresh in flight while the callers arrive
    try {
      const { connection, grant } = await h.addConnection({ rotate: true, expiresInSeconds: 5 });
      const app = await server();
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          app.inject({ url: `/v1/connections/${connection.id}/token`, headers: AUTH }),
        ),
      );
      expect(answers.map((a) => a.statusCode)).toEqual(Array(20).fill(200));
      expect(refreshesOf(grant.grantId)).toBe(1);
      expect(h.provider.reuseCount).toBe(0);
      const tokens = new Set(answers.map((a) => a.json().accessToken));
      expect([...tokens]).toEqual([h.provider.grant(grant.grantId)?.accessToken]);
    } finally {
      h.provider.latencyMs = 0;
    }
  });

  it("waits for a refresh another process holds the lock for, and answers its result", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: 5 });
    const { lease, answer } = await askWhileLocked(connection.id);
    // The "other process" stores its result, then releases.
    const expiresAt = new Date(Date.now() + 3_600_000);
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: {
        accessToken: sealAccessToken(h.keyRing, connection.id, "stored-by-the-holder"),
        expiresAt,
        version: { increment: 1 },
        refreshCount: { increment: 1 },
      },
    });
    await lease.release();
    const response = await answer;
    expect(response.json()).toMatchObject({
      accessToken: "stored-by-the-holder",
      expiresAt: expiresAt.toISOString(),
    });
    expect(refreshesOf(grant.grantId)).toBe(0);
  });

  it("does not refresh again what another process refreshed after this caller found it stale", async () => {
    const { connection, grant } = await h.addConnection({ rotate: true, expiresInSeconds: 5 });
    let raced = false;
    // The caller's first read finds the token stale; right then a worker refreshes it and
    // releases the lock, before the caller asks for the lock itself.
    const prisma = h.prisma.$extends({
      query: {
        connection: {
          async findUnique({ args, query }) {
            const row = await query(args);
            if (!raced) {
              raced = true;
              const run = await refreshConnection(h.deps, {
                connectionId: connection.id,
                source: "worker",
              });
              expect(run).toMatchObject({ kind: "done", outcome: "success" });
            }
            return row;
          },
        },
      },
    }) as unknown as PrismaClient;
    const token = await new TokenService(h.deps, prisma, testMetrics().http).token(
      connection.id,
      60,
    );
    expect(refreshesOf(grant.grantId)).toBe(1);
    expect(h.provider.reuseCount).toBe(0);
    expect(token.accessToken).toBe(h.provider.grant(grant.grantId)?.accessToken);
  });

  it("never answers a token that has already expired, even one another process just stored", async () => {
    const { connection } = await h.addConnection({ expiresInSeconds: 5 });
    const { lease, answer } = await askWhileLocked(connection.id);
    // The holder (a clock-skewed or buggy process) stores a "refreshed" token that is
    // already past its expiry.
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: {
        accessToken: sealAccessToken(h.keyRing, connection.id, "expired-on-arrival"),
        expiresAt: new Date(Date.now() - 1_000),
        version: { increment: 1 },
        refreshCount: { increment: 1 },
      },
    });
    await lease.release();
    const response = await answer;
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ error: "refresh_failed" });
    expect(response.body).not.toContain("expired-on-arrival");
  });

  it("returns the old token when the refresh fails and it is still valid", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: 30 });
    h.provider.failNext(1, { status: 502 }, { grantId: grant.grantId });
    const response = await tokenOf(connection.id);
    expect(response.statusCode).toBe(200);
    expect(response.json().accessToken).toBe(grant.accessToken);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "active", consecutiveFailures: 1 });
  });

  it("answers 503 refresh_failed when the refresh fails and the token has expired", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: -10 });
    h.provider.failNext(1, { status: 503 }, { grantId: grant.grantId });
    const response = await tokenOf(connection.id);
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ error: "refresh_failed" });
    expect(Number(response.headers["retry-after"])).toBeGreaterThan(0);
    expect(response.body).not.toContain(grant.accessToken);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row.status).toBe("expired");
  });

  it("does not call the provider again before a failed refresh's retry is due", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: -10 });
    h.provider.failNext(20, { status: 503 }, { grantId: grant.grantId });
    const requestsBefore = h.provider.requests;
    const answers = [];
    for (let call = 0; call < 5; call += 1) answers.push(await tokenOf(connection.id));
    expect(answers.map((answer) => answer.statusCode)).toEqual(Array(5).fill(503));
    // One provider call: the others wait for the backoff the row records, and say so.
    expect(h.provider.requests - requestsBefore).toBe(1);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row.consecutiveFailures).toBe(1);
    const waitSeconds = ((row.nextRefreshAt?.getTime() ?? 0) - Date.now()) / 1000;
    expect(Number(answers.at(-1)?.headers["retry-after"])).toBeCloseTo(waitSeconds, -1);
  });

  it("takes a connection id in any case, and locks it as the workers do", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: 5 });
    // The uppercase request meets the lowercase lock the "worker" holds.
    const { lease, answer } = await askWhileLocked(connection.id, connection.id.toUpperCase());
    await lease.release();
    expect((await answer).statusCode).toBe(200);
    expect(refreshesOf(grant.grantId)).toBe(1);
  });

  it("asks at most half a refreshed token's lifetime, so short-lived tokens are not refreshed on every call", async () => {
    const { connection, grant } = await h.addConnection({
      rotate: true,
      accessTokenTtlSeconds: 300,
      expiresInSeconds: 5,
    });
    const first = await tokenOf(connection.id, "?minValidity=3600");
    expect(refreshesOf(grant.grantId)).toBe(1);
    // A 300 s token, just refreshed: an hour cannot be had, and 150 s are left.
    const again = await tokenOf(connection.id, "?minValidity=3600");
    expect(again.json().accessToken).toBe(first.json().accessToken);
    expect(refreshesOf(grant.grantId)).toBe(1);
  });

  it("refuses minValidity that is not a number of seconds up to a day", async () => {
    const { connection } = await h.addConnection();
    // Digits only: hex, exponents, blanks and an empty value are not a number of seconds.
    const queries = ["-1", "soon", "86401", "1.5", "0x10", "1e2", "", " 5"];
    for (const query of queries.map((value) => `?minValidity=${encodeURIComponent(value)}`)) {
      const response = await tokenOf(connection.id, query);
      expect(response.statusCode).toBe(400);
      expect(response.json().message).toMatch(/^minValidity: /);
    }
  });
});

describe("HEAD /v1/connections/:id/token", () => {
  it("is no route: a HEAD must be safe, and this GET may refresh and rotate", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: 5 });
    const app = await server();
    const head = await app.inject({
      method: "HEAD",
      url: `/v1/connections/${connection.id}/token`,
      headers: AUTH,
    });
    expect(head.statusCode).toBe(404);
    expect(refreshesOf(grant.grantId)).toBe(0);
  });
});

describe("a connection with no refresh token", () => {
  it("answers 409 needs_reauth saying so, not that the provider refused, and asks no provider", async () => {
    const { connection } = await h.addConnection();
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { refreshToken: null },
    });
    const requests = h.provider.requests;
    const forced = await refreshNow(connection.id);
    expect(forced.statusCode).toBe(409);
    expect(forced.json()).toMatchObject({ error: "needs_reauth" });
    expect(forced.json().message).toMatch(/^the connection has no refresh token; /);
    expect(h.provider.requests).toBe(requests);
  });

  it("serves its token while valid to a reader asking more, changing nothing; 409 once expired", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: 3600 });
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { refreshToken: null },
    });
    const longer = await tokenOf(connection.id, "?minValidity=7200");
    expect(longer.statusCode).toBe(200);
    expect(longer.json().accessToken).toBe(grant.accessToken);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({
      status: "active",
      lastErrorCode: null,
      version: connection.version,
    });

    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { expiresAt: new Date(Date.now() - 1_000) },
    });
    const expired = await tokenOf(connection.id);
    expect(expired.statusCode).toBe(409);
    expect(expired.json().message).toMatch(/^the connection has no refresh token; /);
    expect(expired.body).not.toContain(grant.accessToken);
  });
});

describe("needs_reauth, then new tokens from the app", () => {
  it("answers 409 while the grant is dead, and refreshes again once tokens are re-sent", async () => {
    const { connection, grant } = await h.addConnection({ rotate: true, expiresInSeconds: 5 });
    h.provider.revoke(grant.refreshToken);
    const dead = await tokenOf(connection.id);
    expect(dead.statusCode).toBe(409);
    expect(dead.json()).toMatchObject({ error: "needs_reauth" });
    expect((await tokenOf(connection.id)).statusCode).toBe(409);
    const app = await server();
    const forced = await refreshNow(connection.id);
    expect(forced.statusCode).toBe(409);

    // The user goes through OAuth again; the app sends the new grant's tokens.
    const regrant = h.provider.issueGrant({ rotate: true });
    const integration = await h.prisma.integration.findUniqueOrThrow({
      where: { id: connection.integrationId },
    });
    const resent = await app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: AUTH,
      payload: {
        integration: integration.key,
        externalId: connection.externalId,
        accessToken: regrant.accessToken,
        refreshToken: regrant.refreshToken,
        expiresIn: 5,
      },
    });
    expect(resent.statusCode).toBe(200);
    expect(resent.json()).toMatchObject({ id: connection.id, status: "active", lastError: null });

    const refreshed = await refreshNow(connection.id);
    expect(refreshed.statusCode).toBe(200);
    expect(refreshed.json()).toMatchObject({ status: "active", refreshCount: 1 });
    expect(refreshesOf(regrant.grantId)).toBe(1);
    const token = (await tokenOf(connection.id)).json();
    expect(token.accessToken).toBe(h.provider.grant(regrant.grantId)?.accessToken);
  });
});

describe("a connection in error (the provider refused the integration's client)", () => {
  const refuseClient = (grantId: string) =>
    h.provider.failNext(1, { status: 401, error: "invalid_client" }, { grantId });

  it("answers 409 integration_error, without Retry-After, once its token has expired", async () => {
    const { connection, grant } = await h.addConnection({
      integrationKey: "misconfigured",
      expiresInSeconds: -10,
    });
    refuseClient(grant.grantId);
    const first = await tokenOf(connection.id);
    expect(first.statusCode).toBe(409);
    expect(first.json()).toMatchObject({ error: "integration_error" });
    expect(first.json().message).toMatch(/update the integration/);
    expect(first.headers["retry-after"]).toBeUndefined();
    expect(first.body).not.toContain(grant.accessToken);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row).toMatchObject({ status: "error", nextRefreshAt: null });

    // No retry happens until the integration is updated: no more provider calls.
    const requests = h.provider.requests;
    expect((await tokenOf(connection.id)).json()).toMatchObject({ error: "integration_error" });
    const forced = await refreshNow(connection.id);
    expect(forced.statusCode).toBe(409);
    expect(forced.json()).toMatchObject({ error: "integration_error" });
    expect(h.provider.requests).toBe(requests);
  });

  it("answers 409 integration_error while its token is still valid (SPEC §3), asking no provider again", async () => {
    const { connection, grant } = await h.addConnection({
      integrationKey: "misconfigured",
      expiresInSeconds: 30,
    });
    refuseClient(grant.grantId);
    // 30 s left, 60 s asked: the refresh is refused, and the connection is in `error`.
    const response = await tokenOf(connection.id);
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ error: "integration_error" });
    expect(response.body).not.toContain(grant.accessToken);
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: connection.id } });
    expect(row.status).toBe("error");
    const requests = h.provider.requests;
    const later = await tokenOf(connection.id, "?minValidity=0");
    expect(later.json()).toMatchObject({ error: "integration_error" });
    expect(h.provider.requests).toBe(requests);
  });
});

describe("a connection in error after answers of no known shape", () => {
  it("says the token endpoint's answers were not understood, not that it refused the client", async () => {
    const { connection } = await h.addConnection({ expiresInSeconds: 3600 });
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { status: "error", consecutiveUnknown: 5, lastErrorCode: "malformed_response" },
    });
    const response = await tokenOf(connection.id);
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ error: "integration_error" });
    expect(response.json().message).toMatch(
      /^the token endpoint answered 5 times in a row with nothing/,
    );
    expect(response.json().message).not.toMatch(/refused/);
  });
});

describe("a connection stopped in doubt (docs/adr/0016)", () => {
  it("answers 409 needs_reauth saying the token is not sent again, never integration_error", async () => {
    const { connection, grant } = await h.addConnection({
      provider: "github",
      rotate: true,
      expiresInSeconds: -10,
    });
    // The answer is lost after GitHub rotated: the token is not sent again.
    h.provider.failNext(1, { hang: true, applyRefresh: true }, { grantId: grant.grantId });
    const stopped = await tokenOf(connection.id);
    expect(stopped.statusCode).toBe(409);
    expect(stopped.json()).toMatchObject({ error: "needs_reauth" });
    expect(stopped.json().message).toMatch(/not sent again; authorize again/);
    const requests = h.provider.requests;
    expect((await refreshNow(connection.id)).json()).toMatchObject({ error: "needs_reauth" });
    expect(h.provider.requests).toBe(requests);
    expect(h.provider.reuseCount).toBe(0);

    // New tokens from the app end it: active, out of doubt, and refreshed again.
    const fresh = h.provider.issueGrant({ rotate: true });
    const app = await server();
    const posted = await app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: AUTH,
      payload: {
        integration: "mock-github",
        externalId: connection.externalId,
        accessToken: fresh.accessToken,
        refreshToken: fresh.refreshToken,
        expiresIn: 3600,
      },
    });
    expect(posted.statusCode).toBe(200);
    expect(posted.json()).toMatchObject({ status: "active", lastError: null });
    expect((await tokenOf(connection.id)).json().accessToken).toBe(fresh.accessToken);
    expect((await refreshNow(connection.id)).json()).toMatchObject({ status: "active" });
    expect(refreshesOf(fresh.grantId)).toBe(1);
  });
});

describe("a connection this process cannot open", () => {
  it("answers 500 saying why, counted, and reads or refreshes nothing", async () => {
    const lacking = { ...h.deps, keyRing: KeyRing.fromSpec(generateEncryptionKey("other")) };
    const app = await connectionsTestServer(h, h.queues, lacking);
    const before = await metricValue(h.metrics.decryptionFailures, { source: "api" });
    const valid = await h.addConnection({ expiresInSeconds: 3600 });
    const stale = await h.addConnection({ expiresInSeconds: 10 });
    for (const { connection } of [valid, stale]) {
      const response = await app.inject({
        url: `/v1/connections/${connection.id}/token`,
        headers: AUTH,
      });
      expect(response.statusCode).toBe(500);
      expect(response.json()).toEqual({
        error: "internal",
        message: expect.stringMatching(/cannot open the connection's stored tokens.*keys:status/),
      });
    }
    expect(await metricValue(h.metrics.decryptionFailures, { source: "api" })).toBe(before + 2);
    expect(refreshesOf(stale.grant.grantId)).toBe(0);
  });
});

describe("POST /v1/connections/:id/refresh", () => {
  it("refreshes a valid token now and answers the view", async () => {
    const { connection, grant } = await h.addConnection({ expiresInSeconds: 3600 });
    const response = await refreshNow(connection.id);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id: connection.id, refreshCount: 1, lastError: null });
    expect(response.body).not.toContain(grant.refreshToken);
    expect(refreshesOf(grant.grantId)).toBe(1);
  });

  it("answers 503 with Retry-After while the provider rate-limits the integration", async () => {
    const { connection, grant } = await h.addConnection({
      integrationKey: "limited",
      expiresInSeconds: 3600,
    });
    h.provider.failNext(1, { status: 429, retryAfter: "30" }, { grantId: grant.grantId });
    const limited = await refreshNow(connection.id);
    expect(limited.statusCode).toBe(503);
    expect(limited.json().error).toBe("refresh_failed");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(25);
    // The integration cools down: the next try does not reach the provider.
    const requests = h.provider.requests;
    const cooling = await refreshNow(connection.id);
    expect(cooling.statusCode).toBe(503);
    expect(h.provider.requests).toBe(requests);
  });
});

describe("a refresh that cannot run (Redis or PostgreSQL out)", () => {
  it("answers the stored token while it still works, and the outage once it has expired", async () => {
    const down = Object.assign(new Error("Connection is closed."), { name: "Error" });
    const lock = Object.create(h.deps.lock) as typeof h.deps.lock;
    lock.acquire = () => Promise.reject(down);
    const tokens = new TokenService({ ...h.deps, lock }, h.prisma, testMetrics().http);
    const requests = h.provider.requests;

    // Stale for the caller's minValidity, still valid: the token it has, not a 503.
    const valid = await h.addConnection({ expiresInSeconds: 600 });
    expect((await tokens.token(valid.connection.id, 3600)).accessToken).toBe(
      valid.grant.accessToken,
    );
    const expired = await h.addConnection({ expiresInSeconds: -10 });
    // The outage goes up, which the route answers 503 unavailable.
    await expect(tokens.token(expired.connection.id, 60)).rejects.toBe(down);
    expect(h.provider.requests).toBe(requests);
  });

  it("never answers the stored token after the provider refused the grant and the stop could not be written", async () => {
    const tokens = new TokenService(h.deps, h.prisma, testMetrics().http);
    const { connection, grant } = await h.addConnection({ expiresInSeconds: 600 });
    h.provider.revoke(grant.refreshToken);
    const store = h.deps.store as { write: unknown };
    store.write = () => Promise.reject(new Error("Connection terminated unexpectedly"));
    try {
      await expect(tokens.token(connection.id, 3600)).rejects.toThrow("Connection terminated");
    } finally {
      delete store.write;
    }
  }, 15_000);
});

describe("TokenService.close", () => {
  it("waits until a refresh in flight has stored its answer, and starts no other", async () => {
    h.provider.latencyMs = 300;
    try {
      const tokens = new TokenService(h.deps, h.prisma, testMetrics().http);
      const due = await h.addConnection({ rotate: true, expiresInSeconds: 5 });
      const later = await h.addConnection({ rotate: true, expiresInSeconds: -10 });
      const requests = h.provider.requests;
      const answer = tokens.token(due.connection.id, 60);
      await vi.waitFor(() => expect(h.provider.requests).toBe(requests + 1), { interval: 5 });

      const closed = tokens.close();
      await expect(tokens.token(later.connection.id, 60)).rejects.toMatchObject({
        statusCode: 503,
        code: "unavailable",
      });
      await closed;
      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: due.connection.id } });
      expect(row.refreshCount).toBe(1);
      expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(
        h.provider.grant(due.grant.grantId)?.refreshToken,
      );
      expect((await answer).accessToken).toBe(h.provider.grant(due.grant.grantId)?.accessToken);
      expect(h.provider.requests).toBe(requests + 1);
    } finally {
      h.provider.latencyMs = 0;
    }
  });
});

describe("evergreen_token_requests_total", () => {
  it("counts each answer by outcome: stored, refreshed, 409s and 503s", async () => {
    const metrics = testMetrics();
    const tokens = new TokenService(h.deps, h.prisma, metrics.http);
    const ask = (id: string) => tokens.token(id, 60).catch(() => undefined);

    const valid = await h.addConnection({ expiresInSeconds: 3600 });
    await ask(valid.connection.id);
    const stale = await h.addConnection({ expiresInSeconds: 30 });
    await ask(stale.connection.id);
    const dead = await h.addConnection({ expiresInSeconds: -10 });
    h.provider.revoke(dead.grant.refreshToken);
    await ask(dead.connection.id);
    const misconfigured = await h.addConnection({
      integrationKey: "misconfigured-outcomes",
      expiresInSeconds: -10,
    });
    h.provider.failNext(
      1,
      { status: 401, error: "invalid_client" },
      {
        grantId: misconfigured.grant.grantId,
      },
    );
    await ask(misconfigured.connection.id);
    const failing = await h.addConnection({ expiresInSeconds: -10 });
    h.provider.failNext(1, { status: 503 }, { grantId: failing.grant.grantId });
    await ask(failing.connection.id);
    await tokens.close();
    const stopping = await h.addConnection({ expiresInSeconds: -10 });
    await ask(stopping.connection.id);
    // Not an answer about a token: no outcome.
    await ask(crypto.randomUUID());

    const counts = Object.fromEntries(
      await Promise.all(
        TOKEN_OUTCOMES.map(async (outcome) => [
          outcome,
          await metricValue(metrics.http.tokenRequests, { outcome }),
        ]),
      ),
    );
    expect(counts).toEqual({
      stored: 1,
      refreshed: 1,
      needs_reauth: 1,
      integration_error: 1,
      refresh_failed: 1,
      unavailable: 1,
    });
  });
});
