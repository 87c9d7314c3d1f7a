import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import { createPrismaClient, type PrismaClient } from "@evergreen/db";
import { createTestDatabase, type TestDatabase } from "@evergreen/db/testing";
import { openClientSecret } from "@evergreen/refresh";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH, testServer } from "../test-server";
import { registerIntegrationRoutes } from "./integrations";

const auth = AUTH;
let db: TestDatabase;
let prisma: PrismaClient;
const keyRing = KeyRing.fromSpec(generateEncryptionKey("t"));

beforeAll(async () => {
  db = await createTestDatabase();
  prisma = createPrismaClient({ url: db.url, poolSize: 2 });
});
afterAll(async () => {
  await prisma.$disconnect();
  await db.drop();
});

function server(allowInsecureTokenUrls = false) {
  return testServer({
    routes: [(app) => registerIntegrationRoutes(app, { prisma, keyRing, allowInsecureTokenUrls })],
  });
}

const google = {
  key: "gmail",
  provider: "google",
  clientId: "123.apps.googleusercontent.com",
  clientSecret: "GOCSPX-secret-value",
  scopes: ["https://www.googleapis.com/auth/gmail.readonly"],
};

describe("POST /v1/integrations", () => {
  it("creates, then updates by key, never echoing the secret, and stores it encrypted", async () => {
    const app = await server();
    const created = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: google,
    });
    expect(created.statusCode).toBe(201);
    expect(created.body).not.toContain("GOCSPX");
    expect(created.json()).toMatchObject({
      key: "gmail",
      provider: "google",
      scopes: google.scopes,
    });

    const updated = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: { ...google, clientSecret: "GOCSPX-rotated", refreshBufferSeconds: 600 },
    });
    expect(updated.statusCode).toBe(200);
    expect(updated.json()).toMatchObject({ refreshBufferSeconds: 600 });

    const row = await prisma.integration.findUniqueOrThrow({ where: { key: "gmail" } });
    expect(row.clientSecret).not.toContain("GOCSPX");
    expect(openClientSecret(keyRing, row.id, row.clientSecret)).toBe("GOCSPX-rotated");
    expect(await prisma.integration.count({ where: { key: "gmail" } })).toBe(1);
  });

  it.each([
    [{ ...google, key: "Bad Key" }, /^key: /],
    [{ ...google, provider: "myspace" }, /^provider: unknown provider/],
    [{ ...google, clientId: "not-google" }, /^clientId: Google client ids/],
    [
      { ...google, provider: "microsoft", clientId: "nope" },
      /^clientId: Microsoft client ids are UUIDs/,
    ],
    [{ ...google, provider: "oauth2", clientId: "x" }, /^tokenUrl: required/],
    [
      { ...google, provider: "oauth2", clientId: "x", tokenUrl: "http://idp.example/token" },
      /^tokenUrl: must be an https/,
    ],
    [{ ...google, clientSecret: "" }, /^clientSecret: /],
    [{ ...google, refreshBufferSeconds: -5 }, /^refreshBufferSeconds: /],
  ])("refuses %j naming the field", async (payload, message) => {
    const app = await server();
    const response = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toBe("invalid_request");
    expect(response.json().message).toMatch(message);
    expect(response.body).not.toContain("GOCSPX");
  });

  it("allows http:// token URLs only with ALLOW_INSECURE_TOKEN_URLS", async () => {
    const app = await server(true);
    const payload = {
      ...google,
      key: "local",
      provider: "oauth2",
      clientId: "x",
      tokenUrl: "http://127.0.0.1:9/token",
    };
    expect(
      (await app.inject({ method: "POST", url: "/v1/integrations", headers: auth, payload }))
        .statusCode,
    ).toBe(201);
  });

  it("answers malformed JSON, a wrong media type and an oversized body with SPEC codes", async () => {
    const app = await server();
    const post = (payload: string, contentType: string) =>
      app.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: { ...auth, "content-type": contentType },
        payload,
      });
    const malformed = await post("{", "application/json");
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error).toBe("invalid_request");
    expect((await post("key=x", "text/plain")).statusCode).toBe(415);
    const huge = await post(
      JSON.stringify({ ...google, clientSecret: "x".repeat(1_100_000) }),
      "application/json",
    );
    expect(huge.statusCode).toBe(413);
    expect(huge.json().error).toBe("payload_too_large");
  });
});

describe("GET and DELETE /v1/integrations", () => {
  it("lists, reads, refuses to delete while connections exist, then deletes", async () => {
    const app = await server();
    await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: { ...google, key: "cal" },
    });
    const list = await app.inject({ url: "/v1/integrations", headers: auth });
    expect(list.json().data.map((i: { key: string }) => i.key)).toContain("cal");
    expect((await app.inject({ url: "/v1/integrations/cal", headers: auth })).json().key).toBe(
      "cal",
    );
    expect((await app.inject({ url: "/v1/integrations/none", headers: auth })).statusCode).toBe(
      404,
    );

    const row = await prisma.integration.findUniqueOrThrow({ where: { key: "cal" } });
    const connection = await prisma.connection.create({
      data: { integrationId: row.id, externalId: "u1", accessToken: "ev1.t.x" },
    });
    const refused = await app.inject({
      method: "DELETE",
      url: "/v1/integrations/cal",
      headers: auth,
    });
    expect(refused.statusCode).toBe(409);
    await prisma.connection.delete({ where: { id: connection.id } });
    const deleted = await app.inject({
      method: "DELETE",
      url: "/v1/integrations/cal",
      headers: auth,
    });
    expect(deleted.statusCode).toBe(204);
    expect(await prisma.integration.count({ where: { key: "cal" } })).toBe(0);
  });
});
