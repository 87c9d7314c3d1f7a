import { createLogger } from "@evergreen/observability";
import { openAccessToken, openRefreshToken, refreshJobId } from "@evergreen/refresh";
import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH, testServer } from "../test-server";
import { registerConnectionRoutes } from "./connections";

const auth = AUTH;
let h: RefreshHarness;

beforeAll(async () => {
  h = await createRefreshHarness();
  await h.addConnection({ integrationKey: "mock" }); // creates the "mock" integration
});
afterAll(() => h.close());

function server() {
  return testServer({
    routes: [
      (app) =>
        registerConnectionRoutes(app, {
          prisma: h.prisma,
          keyRing: h.keyRing,
          queue: h.queue,
          log: createLogger({ name: "api-test", level: "silent" }),
          defaultBufferSeconds: 300,
        }),
    ],
  });
}

const tokens = {
  integration: "mock",
  externalId: "alice@example.com",
  accessToken: "ya29.access-one",
  refreshToken: "1//refresh-one",
  expiresIn: 3600,
};

describe("POST /v1/connections", () => {
  it("stores encrypted tokens, answers the view, and schedules the refresh", async () => {
    const app = await server();
    const response = await app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: auth,
      payload: tokens,
    });
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
    const app = await server();
    const first = (
      await app.inject({
        method: "POST",
        url: "/v1/connections",
        headers: auth,
        payload: { ...tokens, externalId: "bob" },
      })
    ).json();
    await h.prisma.connection.update({
      where: { id: first.id },
      data: {
        status: "needs_reauth",
        nextRefreshAt: null,
        lastErrorCode: "invalid_grant",
        lastErrorAt: new Date(),
      },
    });
    const again = await app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: auth,
      payload: { ...tokens, externalId: "bob", refreshToken: "1//refresh-two" },
    });
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
    [{ ...tokens, expiresIn: -1 }, /^expiresIn: /],
    [{ ...tokens, expiresAt: "tomorrow" }, /^expiresAt: /],
    [{ ...tokens, expiresAt: "2030-01-01T00:00:00Z" }, /^expiresAt: give expiresIn or expiresAt/],
    [{ ...tokens, metadata: ["not", "an", "object"] }, /^metadata: /],
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
});

describe("GET and DELETE /v1/connections/:id", () => {
  it("reads a connection, then deletes it with its tokens and its pending job", async () => {
    const app = await server();
    const { id } = (
      await app.inject({
        method: "POST",
        url: "/v1/connections",
        headers: auth,
        payload: { ...tokens, externalId: "carol" },
      })
    ).json();
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

  it("answers 400 for an id that is not a UUID", async () => {
    const app = await server();
    const response = await app.inject({ url: "/v1/connections/123", headers: auth });
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toMatch(/^id: /);
  });
});
