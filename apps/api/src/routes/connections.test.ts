import {
  openAccessToken,
  openRefreshToken,
  reconcileQueue,
  refreshJobId,
} from "@evergreen/refresh";
import {
  createRefreshHarness,
  type RefreshHarness,
  successfulRefresh,
} from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH, connectionsTestServer } from "../test-server";

const auth = AUTH;
let h: RefreshHarness;

beforeAll(async () => {
  h = await createRefreshHarness();
  await h.addConnection({ integrationKey: "mock" }); // creates the "mock" integration
});
afterAll(() => h.close());

const server = () => connectionsTestServer(h);
/** POST /v1/connections with this body. */
const post = (payload: Record<string, unknown>) =>
  server().then((app) =>
    app.inject({ method: "POST", url: "/v1/connections", headers: auth, payload }),
  );

/** POST /v1/connections with this body as it is, labelled JSON. */
const postRaw = (payload: string | Buffer) =>
  server().then((app) =>
    app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: { ...auth, "content-type": "application/json" },
      payload,
    }),
  );

const tokens = {
  integration: "mock",
  externalId: "alice@example.com",
  accessToken: "ya29.access-one",
  refreshToken: "1//refresh-one",
  expiresIn: 3600,
};

/** JSON text of an array nested `levels` deep: `[[[...]]]`. */
const nestedJson = (levels: number) => `${"[".repeat(levels)}${"]".repeat(levels)}`;
const nested = (levels: number) => JSON.parse(nestedJson(levels));

describe("POST /v1/connections", () => {
  it("reads null for an optional field as absent, and still refuses it for a required one", async () => {
    const created = await post({
      ...tokens,
      externalId: "nulls",
      expiresIn: 3600,
      refreshToken: null,
      expiresAt: null,
      scope: null,
      tokenType: null,
      metadata: null,
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ externalId: "nulls", metadata: {} });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: created.json().id } });
    expect(row).toMatchObject({ refreshToken: null, scope: null, tokenType: "Bearer" });

    const refused = await post({ ...tokens, accessToken: null });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().message).toMatch(/^accessToken: /);
    // Names Object.prototype has are unknown fields like any other, null or not.
    for (const name of ["constructor", "toString", "__proto__"]) {
      const unknown = await post({ ...tokens, [name]: null });
      expect(unknown.statusCode, name).toBe(400);
    }
  });

  it("stores encrypted tokens, answers the view, and schedules the refresh", async () => {
    const response = await post(tokens);
    expect(response.statusCode).toBe(201);
    expect(response.body).not.toContain("refresh-one");
    expect(response.body).not.toContain("access-one");
    const view = response.json();
    expect(view).toMatchObject({
      integration: "mock",
      externalId: tokens.externalId,
      status: "active",
      lastError: null,
    });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: view.id } });
    expect(openAccessToken(h.keyRing, row.id, row.accessToken)).toBe(tokens.accessToken);
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(tokens.refreshToken);
    const job = await h.queue.getJob(refreshJobId({ connectionId: row.id, version: 0 }));
    expect(await job?.getState()).toBe("delayed");
  });

  it("re-sent tokens for a needs_reauth connection make it active and schedule it again", async () => {
    const first = (await post({ ...tokens, externalId: "bob" })).json();
    await h.prisma.connection.update({
      where: { id: first.id },
      data: {
        status: "needs_reauth",
        nextRefreshAt: null,
        lastErrorCode: "invalid_grant",
        lastErrorAt: new Date(),
      },
    });
    const again = await post({ ...tokens, externalId: "bob", refreshToken: "1//refresh-two" });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: first.id, status: "active", lastError: null });
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: first.id } });
    expect(row.version).toBe(1);
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe("1//refresh-two");
    expect(await h.queue.getJob(refreshJobId({ connectionId: row.id, version: 1 }))).toBeTruthy();
  });

  it.each([
    [{ ...tokens, integration: "nope" }, /^integration: no integration/],
    [{ ...tokens, externalId: "" }, /^externalId: /],
    [{ ...tokens, accessToken: undefined }, /^accessToken: /],
    [{ ...tokens, expiresIn: 1.5 }, /^expiresIn: /],
    [{ ...tokens, expiresAt: "tomorrow" }, /^expiresAt: /],
    [{ ...tokens, expiresAt: "2030-01-01T00:00:00Z" }, /^expiresAt: give expiresIn or expiresAt/],
    [{ ...tokens, metadata: ["not", "an", "object"] }, /^metadata: /],
    [{ ...tokens, metadata: { x: nested(32) } }, /^metadata: at most 32 levels deep/],
  ])("refuses %j naming the field", async (payload, message) => {
    const app = await server();
    const response = await app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: auth,
      payload,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toMatch(message);
    expect(response.body).not.toContain("refresh-one");
  });

  it("refuses metadata nested thousands deep with a 400, not a stack overflow's 500", async () => {
    const app = await server();
    const response = await app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: { ...auth, "content-type": "application/json" },
      payload: `${JSON.stringify(tokens).slice(0, -1)},"metadata":{"x":${nestedJson(5000)}}}`,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toBe("metadata: at most 32 levels deep");
  });

  it("stores metadata nested up to 32 levels deep", async () => {
    const app = await server();
    const metadata = { x: nested(31) };
    const response = await app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: auth,
      payload: { ...tokens, externalId: "deep@example.com", metadata },
    });
    expect(response.statusCode).toBe(201);
    expect(response.json().metadata).toEqual(metadata);
  });

  it("refuses U+0000, which PostgreSQL cannot store, with a 400 naming the field", async () => {
    const nul = "a\u0000b";
    const cases: [Record<string, unknown>, string][] = [
      [{ ...tokens, externalId: nul }, "externalId"],
      [{ ...tokens, scope: nul }, "scope"],
      [{ ...tokens, tokenType: nul }, "tokenType"],
      [{ ...tokens, metadata: { team: { name: nul } } }, "metadata.team.name"],
      [{ ...tokens, metadata: { [nul]: 1 } }, "metadata.a\\u0000b"],
    ];
    for (const [payload, field] of cases) {
      const response = await post(payload);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toEqual({
        error: "invalid_request",
        message: `${field}: must not contain U+0000`,
      });
    }
    const app = await server();
    const listed = await app.inject({
      method: "GET",
      url: "/v1/connections?externalId=a%00b",
      headers: auth,
    });
    expect(listed.statusCode).toBe(400);
    expect(listed.json().message).toBe("externalId: must not contain U+0000");
  });

  it("refuses a body that is not UTF-8, where its bytes were read as U+FFFD", async () => {
    const latin1 = (externalId: string) =>
      postRaw(Buffer.from(JSON.stringify({ ...tokens, externalId }), "latin1"));
    for (const externalId of ["jos\u00e9", "jos\u00e8"]) {
      const response = await latin1(externalId);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toEqual({
        error: "invalid_request",
        message: "body: not valid UTF-8",
      });
    }
    // The same text in UTF-8 is taken as it came.
    const utf8 = await post({ ...tokens, externalId: "jos\u00e9" });
    expect(utf8.statusCode).toBe(201);
    expect(utf8.json().externalId).toBe("jos\u00e9");
  });

  it("refuses a body declared in a charset other than UTF-8 with 415", async () => {
    const app = await server();
    const post = (contentType: string) =>
      app.inject({
        method: "POST",
        url: "/v1/connections",
        headers: { ...auth, "content-type": contentType },
        payload: JSON.stringify({ ...tokens, externalId: "charset" }),
      });
    for (const contentType of [
      "application/json; charset=utf-16",
      "application/json;charset=ISO-8859-1",
    ]) {
      const response = await post(contentType);
      expect(response.statusCode, contentType).toBe(415);
      expect(response.json()).toMatchObject({ error: "unsupported_media_type" });
    }
    for (const contentType of [
      "application/json; charset=UTF-8",
      'application/json; charset="utf-8"',
    ]) {
      expect((await post(contentType)).statusCode, contentType).toBeLessThan(300);
    }
  });

  it("names a key that could poison prototypes, where it was called invalid JSON", async () => {
    const body = JSON.stringify(tokens).slice(1);
    const cases: [string, string][] = [
      [`{"__proto__":{"admin":true},${body}`, "__proto__"],
      [`{"metadata":{"a":{"constructor":{"prototype":{}}}},${body}`, "metadata.a.constructor"],
    ];
    for (const [payload, path] of cases) {
      const response = await postRaw(payload);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toEqual({
        error: "invalid_request",
        message: `${path}: a key this API does not accept`,
      });
    }
    // Nested far deeper than the call stack goes, the path comes back shortened.
    const depth = 200_000;
    const deep = await postRaw(
      `{"metadata":{"k":${"[".repeat(depth)}{"__proto__":1}${"]".repeat(depth)}},${body}`,
    );
    expect(deep.statusCode).toBe(400);
    expect(deep.json().message).toMatch(/^…\.?(0\.)+__proto__: a key this API does not accept$/);
    // Bad JSON is still called that.
    const broken = await postRaw("{bad");
    expect(broken.statusCode).toBe(400);
    expect(broken.json().message).toMatch(/not valid JSON/);
  });

  it("refuses a lone UTF-16 surrogate, which UTF-8 cannot carry, where it was stored as U+FFFD", async () => {
    // Sent as JSON escapes: JSON.stringify writes a lone surrogate as `\ud800`.
    const cases: [Record<string, unknown>, string][] = [
      [{ ...tokens, externalId: "user-\ud800" }, "externalId"],
      [{ ...tokens, accessToken: "\udfff" }, "accessToken"],
      [{ ...tokens, metadata: { k: "\ud800" } }, "metadata.k"],
      [{ ...tokens, metadata: { "\udbff": 1 } }, "metadata.\\udbff"],
    ];
    for (const [payload, field] of cases) {
      const response = await post(payload);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toEqual({
        error: "invalid_request",
        message: `${field}: must not contain a lone UTF-16 surrogate`,
      });
    }
    // A pair is one code point, stored as it came.
    const emoji = await post({ ...tokens, externalId: "user-\ud83c\udf32" });
    expect(emoji.statusCode).toBe(201);
    expect(emoji.json().externalId).toBe("user-🌲");
  });
});

describe("GET and DELETE /v1/connections/:id", () => {
  it("reads a connection, then deletes it with its tokens and its pending job", async () => {
    const app = await server();
    const { id } = (await post({ ...tokens, externalId: "carol" })).json();
    expect((await app.inject({ url: `/v1/connections/${id}`, headers: auth })).json().id).toBe(id);

    const deleted = await app.inject({
      method: "DELETE",
      url: `/v1/connections/${id}`,
      headers: auth,
    });
    expect(deleted.statusCode).toBe(204);
    expect(await h.prisma.connection.findUnique({ where: { id } })).toBeNull();
    expect(await h.queue.getJob(refreshJobId({ connectionId: id, version: 0 }))).toBeUndefined();
    const events = await h.prisma.connectionEvent.findMany({ where: { connectionId: id } });
    expect(events.map((e) => e.type)).toEqual(["created", "deleted"]);
    expect((await app.inject({ url: `/v1/connections/${id}`, headers: auth })).statusCode).toBe(
      404,
    );
  });

  it("deletes once under concurrent deletes of the same connection: one 204, then 404s", async () => {
    const app = await server();
    const { id } = (await post({ ...tokens, externalId: "dave" })).json();
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        app.inject({ method: "DELETE", url: `/v1/connections/${id}`, headers: auth }),
      ),
    );
    const statuses = answers.map((answer) => answer.statusCode).sort();
    expect(statuses).toEqual([204, 404, 404, 404, 404, 404, 404, 404]);
    const events = await h.prisma.connectionEvent.findMany({ where: { connectionId: id } });
    expect(events.map((e) => e.type)).toEqual(["created", "deleted"]);
  });

  it.each([
    "123",
    "%ff",
    "x%00y",
    "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f8",
    `{7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80}`,
    "a".repeat(300),
  ])("answers 404 not_found for the id %s, as for any unknown id", async (id) => {
    const app = await server();
    for (const [method, path] of [
      ["GET", ""],
      ["DELETE", ""],
      ["GET", "/token"],
      ["POST", "/refresh"],
    ] as const) {
      const response = await app.inject({
        method,
        url: `/v1/connections/${id}${path}`,
        headers: auth,
      });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ error: "not_found" });
    }
  });

  it("shows when the refresh token dies only where the provider stated it", async () => {
    const { connection } = await h.addConnection();
    const app = await server();
    const view = () => app.inject({ url: `/v1/connections/${connection.id}`, headers: auth });
    expect((await view()).json()).not.toHaveProperty("refreshTokenExpiresAt");
    const dies = new Date("2031-06-01T00:00:00.000Z");
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: { refreshTokenExpiresAt: dies },
    });
    expect((await view()).json()).toMatchObject({ refreshTokenExpiresAt: dies.toISOString() });
  });

  it("takes an empty body under a JSON content type as no body, and still refuses bad JSON", async () => {
    const app = await server();
    const { id } = (await post({ ...tokens, externalId: "json-header-everywhere" })).json();
    const json = { ...auth, "content-type": "application/json" };
    const refreshed = await app.inject({
      method: "POST",
      url: `/v1/connections/${id}/refresh`,
      headers: json,
    });
    // Past the body parser into the refresh (the fixture's grant is unknown to the provider).
    expect(refreshed.json().error).toBe("needs_reauth");
    const broken = await app.inject({
      method: "DELETE",
      url: `/v1/connections/${id}`,
      headers: json,
      payload: "{",
    });
    expect(broken.statusCode).toBe(400);
    expect(broken.json().error).toBe("invalid_request");
    const deleted = await app.inject({
      method: "DELETE",
      url: `/v1/connections/${id}`,
      headers: json,
    });
    expect(deleted.statusCode).toBe(204);
  });

  it("drops the provider answer parked for a deleted connection, sealed tokens and all", async () => {
    const app = await server();
    const { id } = (await post({ ...tokens, externalId: "parked" })).json();
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id } });
    // What a refresh leaves when PostgreSQL refuses its write.
    const { change, event } = successfulRefresh(row, { nextRefreshAt: row.nextRefreshAt });
    await h.deps.parked.park({ id, version: row.version }, change, event);
    expect(await h.deps.parked.take(id)).not.toBeNull();

    const deleted = await app.inject({
      method: "DELETE",
      url: `/v1/connections/${id}`,
      headers: auth,
    });
    expect(deleted.statusCode).toBe(204);
    expect(await h.deps.parked.take(id)).toBeNull();
  });
});

describe("expiry at registration", () => {
  const HOUR_MS = 3_600_000;

  it.each([
    ["without expiresIn or expiresAt", {}],
    ["with an expiresAt in the past", { expiresAt: "2020-01-01T00:00:00Z" }],
    ["with expiresIn 0", { expiresIn: 0 }],
  ])(
    "a connection posted %s gets the provider's fallback lifetime and a job",
    async (label, stated) => {
      const app = await server();
      const { expiresIn: _, ...withoutExpiry } = tokens;
      const before = Date.now();
      const response = await post({ ...withoutExpiry, externalId: `expiry ${label}`, ...stated });
      expect(response.statusCode).toBe(201);
      const view = response.json();
      // The mock integration is generic oauth2: one hour when no usable expiry is stated.
      const expiresAt = Date.parse(view.expiresAt);
      expect(expiresAt).toBeGreaterThanOrEqual(before + HOUR_MS);
      expect(expiresAt).toBeLessThanOrEqual(Date.now() + HOUR_MS);
      expect(Date.parse(view.nextRefreshAt)).toBeLessThan(expiresAt);
      const job = await h.queue.getJob(refreshJobId({ connectionId: view.id, version: 0 }));
      expect(await job?.getState()).toBe("delayed");

      // The token is served with the expiry it was given, which has not passed.
      const token = await app.inject({
        url: `/v1/connections/${view.id}/token?minValidity=0`,
        headers: auth,
      });
      expect(token.statusCode).toBe(200);
      expect(Date.parse(token.json().expiresAt)).toBeGreaterThan(Date.now());
    },
  );

  it("never serves a token that has expired: without a refresh token it is needs_reauth", async () => {
    const app = await server();
    const { refreshToken: _, ...accessOnly } = tokens;
    const { id } = (await post({ ...accessOnly, externalId: "access-only" })).json();
    // Its hour has passed.
    await h.prisma.connection.update({
      where: { id },
      data: { expiresAt: new Date(Date.now() - 1_000) },
    });
    const token = await app.inject({
      url: `/v1/connections/${id}/token?minValidity=0`,
      headers: auth,
    });
    expect(token.statusCode).toBe(409);
    expect(token.json()).toMatchObject({ error: "needs_reauth" });
    expect(token.body).not.toContain(tokens.accessToken);
  });
});

describe("re-posting a connection without refreshToken", () => {
  it("keeps the stored refresh token, keeps the connection scheduled, and refreshes with it", async () => {
    const app = await server();
    const grant = h.provider.issueGrant({ rotate: true });
    const post = (payload: object) =>
      app.inject({ method: "POST", url: "/v1/connections", headers: auth, payload });
    const first = await post({
      ...tokens,
      externalId: "relogin",
      accessToken: grant.accessToken,
      refreshToken: grant.refreshToken,
    });
    // The README's saveConnection() after a second Google consent: no refresh_token.
    const again = await post({
      integration: "mock",
      externalId: "relogin",
      accessToken: "ya29.second-login",
      expiresIn: 3599,
    });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: first.json().id, status: "active" });
    expect(again.json().nextRefreshAt).not.toBeNull();
    const row = await h.prisma.connection.findUniqueOrThrow({ where: { id: first.json().id } });
    expect(openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")).toBe(grant.refreshToken);
    expect(openAccessToken(h.keyRing, row.id, row.accessToken)).toBe("ya29.second-login");
    const job = await h.queue.getJob(refreshJobId({ connectionId: row.id, version: 1 }));
    expect(await job?.getState()).toBe("delayed");

    const refreshed = await app.inject({
      method: "POST",
      url: `/v1/connections/${row.id}/refresh`,
      headers: auth,
    });
    expect(refreshed.statusCode).toBe(200);
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
  });
});

describe("unknown fields", () => {
  it("refuses a provider's raw token answer, naming its fields", async () => {
    const response = await post({
      integration: "mock",
      externalId: "raw",
      access_token: "ya29.raw",
      refresh_token: "1//raw",
      expires_in: 3599,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: "invalid_request",
      message: "access_token, refresh_token, expires_in: unknown fields",
    });
    expect(await h.prisma.connection.count({ where: { externalId: "raw" } })).toBe(0);
  });

  it.each([
    ["POST", "/v1/connections?force=1", tokens, /^force: unknown field$/],
    ["POST", "/v1/connections", { ...tokens, expires_at: 1 }, /^expires_at: unknown field$/],
    ["GET", "/v1/connections?integration=mock&page=2", undefined, /^page: unknown field$/],
    ["GET", "/v1/connections/ID?fields=all", undefined, /^fields: unknown field$/],
    ["GET", "/v1/connections/ID/token?min_validity=60", undefined, /^min_validity: /],
    ["POST", "/v1/connections/ID/refresh", { force: true }, /^force: unknown field$/],
    ["POST", "/v1/connections/ID/refresh?force=true", undefined, /^force: unknown field$/],
    ["DELETE", "/v1/connections/ID?soft=1", undefined, /^soft: unknown field$/],
    ["DELETE", "/v1/connections/ID", { soft: true }, /^soft: unknown field$/],
  ] as const)("%s %s refuses an unknown field by name", async (method, url, payload, message) => {
    const app = await server();
    const { id } = (await post({ ...tokens, externalId: "unknown-fields" })).json();
    const response = await app.inject({
      method,
      url: url.replace("ID", id),
      headers: auth,
      ...(payload ? { payload } : {}),
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toBe("invalid_request");
    expect(response.json().message).toMatch(message);
    expect(await h.prisma.connection.count({ where: { id } })).toBe(1);
  });
});

describe("registration races and failures", () => {
  it("first registrations of one user at once make one connection that refreshes", async () => {
    const app = await server();
    const grant = h.provider.issueGrant();
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, n) =>
        post({
          ...tokens,
          externalId: "double-submit",
          accessToken: `access-${n}`,
          refreshToken: grant.refreshToken,
        }),
      ),
    );
    expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 200, 200, 200, 201]);
    expect(new Set(answers.map((a) => a.json().id)).size).toBe(1);
    expect(await h.prisma.connection.count({ where: { externalId: "double-submit" } })).toBe(1);
    const refreshed = await app.inject({
      method: "POST",
      url: `/v1/connections/${answers[0]?.json().id}/refresh`,
      headers: auth,
    });
    expect(refreshed.statusCode).toBe(200);
    expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
  });

  it("stores the connection when Redis is down, and the scheduler's sweep adds its job", async () => {
    // A queue on a port nothing listens on: the add fails, the request does not.
    const { createRedis } = await import("@evergreen/redis");
    const { RefreshQueues } = await import("@evergreen/refresh");
    const deadRedis = createRedis("redis://127.0.0.1:1", "producer");
    deadRedis.on("error", () => {});
    const deadQueue = new RefreshQueues(deadRedis, h.queues.layout);
    deadQueue.on("error", () => {});
    try {
      const app = await connectionsTestServer(h, deadQueue);
      const response = await app.inject({
        method: "POST",
        url: "/v1/connections",
        headers: auth,
        payload: { ...tokens, externalId: "redis-down" },
      });
      expect(response.statusCode).toBe(201);
      const { id } = response.json();
      const jobId = refreshJobId({ connectionId: id, version: 0 });
      expect(await h.queue.getJob(jobId)).toBeUndefined();
      expect(response.json().nextRefreshAt).not.toBeNull();

      await reconcileQueue(h.prisma, h.queues, h.redis);
      expect(await (await h.queue.getJob(jobId))?.getState()).toBe("delayed");
    } finally {
      await deadQueue.close().catch(() => {});
      deadRedis.disconnect();
    }
  });
});

describe("GET /v1/connections", () => {
  it("filters by integration, externalId and status, and pages with a cursor", async () => {
    const app = await server();
    for (let n = 0; n < 5; n += 1) {
      await post({ ...tokens, externalId: `page-${n}` });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `status=active&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const page = await app.inject({ url: `/v1/connections?${query}`, headers: auth });
      expect(page.statusCode).toBe(200);
      const body = page.json();
      expect(body.data.length).toBeLessThanOrEqual(2);
      expect(body.data.every((view: { status: string }) => view.status === "active")).toBe(true);
      expect(page.body).not.toContain("access-one");
      seen.push(...body.data.map((view: { externalId: string }) => view.externalId));
      cursor = body.nextCursor;
      pages += 1;
    } while (cursor);
    const active = await h.prisma.connection.count({ where: { status: "active" } });
    expect(seen).toHaveLength(active);
    expect(new Set(seen).size).toBe(active);
    expect(pages).toBe(Math.ceil(active / 2));

    const one = await app.inject({
      url: "/v1/connections?integration=mock&externalId=page-3",
      headers: auth,
    });
    expect(one.json()).toMatchObject({ data: [{ externalId: "page-3" }], nextCursor: null });
    const none = await app.inject({ url: "/v1/connections?integration=other", headers: auth });
    expect(none.json()).toEqual({ data: [], nextCursor: null });
  });

  it.each([
    ["status=gone", /^status: /],
    ["limit=0", /^limit: /],
    ["limit=many", /^limit: /],
    ["limit=", /^limit: /],
    ["limit=0x10", /^limit: /],
    ["cursor=not-a-cursor", /^cursor: not a cursor/],
  ])("refuses ?%s naming the field", async (query, message) => {
    const app = await server();
    const response = await app.inject({ url: `/v1/connections?${query}`, headers: auth });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: "invalid_request" });
    expect(response.json().message).toMatch(message);
  });
});

describe("every connection route", () => {
  const unknown = "7d3f4a52-0c1e-4a7b-9f0e-2b8c5d6e7f80";
  it.each([
    ["GET", `/v1/connections/${unknown}`],
    ["DELETE", `/v1/connections/${unknown}`],
    ["GET", `/v1/connections/${unknown}/token`],
    ["POST", `/v1/connections/${unknown}/refresh`],
  ] as const)("%s %s answers 404 for an unknown id and 401 without a key", async (method, url) => {
    const app = await server();
    const missing = await app.inject({ method, url, headers: auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: "not_found" });
    const anonymous = await app.inject({ method, url });
    expect(anonymous.statusCode).toBe(401);
    const wrongKey = await app.inject({ method, url, headers: { authorization: "Bearer nope" } });
    expect(wrongKey.json()).toEqual({
      error: "unauthorized",
      message: "missing or unknown API key",
    });
  });

  it("answers malformed JSON and oversized bodies on POST /v1/connections", async () => {
    const malformed = await postRaw('{"integration": "mock",');
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error).toBe("invalid_request");
    const huge = await postRaw(
      JSON.stringify({ ...tokens, metadata: { pad: "x".repeat(1_100_000) } }),
    );
    expect(huge.statusCode).toBe(413);
  });
});
