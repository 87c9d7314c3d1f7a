import { EgressPolicy, parseEgressAllowlist } from "@evergreen/egress";
import { createLogger } from "@evergreen/observability";
import type { InsecureTokenUrls } from "@evergreen/providers";
import { openClientSecret, refreshJobId } from "@evergreen/refresh";
import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTH, revocationTestQueue, testMetrics, testServer } from "../test-server";
import { TokenService } from "../token-service";
import { registerConnectionRoutes } from "./connections";
import { registerIntegrationRoutes } from "./integrations";

const auth = AUTH;
let h: RefreshHarness;

beforeAll(async () => {
  h = await createRefreshHarness();
});
afterAll(() => h.close());

/** The harness's egress policy allows loopback, as processes outside production do. */
function server(allowInsecureTokenUrls: InsecureTokenUrls = false, egressPolicy?: EgressPolicy) {
  return testServer({
    routes: [
      (app) =>
        registerIntegrationRoutes(app, {
          prisma: h.prisma,
          keyRing: h.keyRing,
          queue: h.queues,
          log: createLogger({ name: "api-test", level: "silent" }),
          allowInsecureTokenUrls,
          egressPolicy: egressPolicy ?? h.deps.egress.policy,
        }),
      (app) =>
        registerConnectionRoutes(app, {
          prisma: h.prisma,
          refresh: h.deps,
          tokens: new TokenService(h.deps, h.prisma, testMetrics().http),
          revocations: revocationTestQueue(app, h),
        }),
    ],
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
    expect(updated.json()).toMatchObject({
      refreshBufferSeconds: 600,
      accessTokenLifetimeSeconds: null,
    });

    // Salesforce states no lifetime: the org's session timeout is the integration's to say.
    const salesforce = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: {
        key: "crm",
        provider: "salesforce",
        clientId: "3MVG9-id",
        clientSecret: "sf",
        accessTokenLifetimeSeconds: 7200,
      },
    });
    expect(salesforce.statusCode).toBe(201);
    expect(salesforce.json()).toMatchObject({ accessTokenLifetimeSeconds: 7200 });

    const row = await h.prisma.integration.findUniqueOrThrow({ where: { key: "gmail" } });
    expect(row.clientSecret).not.toContain("GOCSPX");
    expect(openClientSecret(h.keyRing, row.id, row.clientSecret)).toBe("GOCSPX-rotated");
    expect(await h.prisma.integration.count({ where: { key: "gmail" } })).toBe(1);
  });

  it.each([
    [{ ...google, key: "Bad Key" }, /^key: /],
    [{ ...google, provider: "myspace" }, /^provider: unknown provider/],
    [{ ...google, provider: "oauth2", clientId: "x" }, /^tokenUrl: required/],
    [
      { ...google, provider: "oauth2", clientId: "x", tokenUrl: "http://idp.example/token" },
      /^tokenUrl: token URL must use https/,
    ],
    [{ ...google, clientSecret: "" }, /^clientSecret: /],
    [{ ...google, clientId: google.clientSecret }, /^clientId: the same value as clientSecret/],
    [{ ...google, refreshBufferSeconds: -5 }, /^refreshBufferSeconds: /],
    [{ ...google, accessTokenLifetimeSeconds: 5 }, /^accessTokenLifetimeSeconds: /],
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

  it.each([
    ["xero", "0123456789ABCDEF0123456789ABCDEF"],
    ["zoom", "aBcD1234eFgH5678"],
    ["dropbox", "abcdefghijklmno"],
    ["linkedin", "86abcdefghijkl"],
    ["notion", "1d2d872b-594c-80a6-a3d5-0037d2a2b5f0"],
    ["box", "abcdefghijklmnopqrstuvwxyz012345"],
    ["pinterest", "1234567"],
  ])("accepts the catalog provider %s with its own endpoints", async (provider, clientId) => {
    const app = await server();
    const response = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: { ...google, key: `catalog-${provider}`, provider, clientId, scopes: [] },
    });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({ provider, clientId });
  });

  it.each([
    ["google", "not-google", /^clientId: Google client ids end in \.apps\.googleusercontent\.com/],
    ["microsoft", "nope", /^clientId: Microsoft Entra ID client ids are UUIDs/],
    ["xero", "not-hex-at-all", /^clientId: Xero client ids are 32 hexadecimal characters/],
    ["notion", "notion-app", /^clientId: Notion client ids are UUIDs/],
  ])(
    "stores a %s integration whose client id %j has another shape, with a warning",
    async (provider, clientId, warning) => {
      const app = await server();
      const response = await app.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: auth,
        payload: { ...google, key: `odd-${provider}`, provider, clientId },
      });
      expect(response.statusCode).toBe(201);
      expect(response.json()).toMatchObject({ provider, clientId });
      expect(response.json().warnings).toEqual([expect.stringMatching(warning)]);
      const read = await app.inject({ url: `/v1/integrations/odd-${provider}`, headers: auth });
      expect(read.json()).toMatchObject({ provider, clientId });
    },
  );

  it("answers a client id of the provider's shape without warnings", async () => {
    const app = await server();
    const response = await app.inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: google,
    });
    expect(response.json()).not.toHaveProperty("warnings");
  });

  it("allows http:// token URLs with ALLOW_INSECURE_TOKEN_URLS, or loopback ones in development", async () => {
    const post = async (allow: InsecureTokenUrls, tokenUrl: string) =>
      (
        await (
          await server(allow)
        ).inject({
          method: "POST",
          url: "/v1/integrations",
          headers: auth,
          payload: { ...google, key: "local", provider: "oauth2", clientId: "x", tokenUrl },
        })
      ).statusCode;
    expect(await post(true, "http://idp.example/token")).toBe(201);
    expect(await post("loopback", "http://127.0.0.1:9/token")).toBe(200);
    expect(await post("loopback", "http://idp.example/token")).toBe(400);
    expect(await post(false, "http://127.0.0.1:9/token")).toBe(400);
  });

  it("refuses a token URL whose host is an internal address the egress policy refuses", async () => {
    const post = async (policy: EgressPolicy, tokenUrl: string) =>
      (await server(false, policy)).inject({
        method: "POST",
        url: "/v1/integrations",
        headers: auth,
        payload: { ...google, key: "internal", provider: "oauth2", clientId: "x", tokenUrl },
      });
    const production = new EgressPolicy();
    for (const tokenUrl of [
      "https://169.254.169.254/latest/meta-data",
      "https://10.0.0.5/token",
      "https://[::1]/token",
      "https://[fd00::1]/token",
      "https://[::ffff:192.168.1.1]/token",
      "https://2130706433/token",
    ]) {
      const response = await post(production, tokenUrl);
      expect(response.statusCode, tokenUrl).toBe(400);
      expect(response.json().message).toMatch(/^tokenUrl: .*EGRESS_ALLOWLIST/);
    }
    // A name that resolves to an internal address now is refused too; one that does not
    // resolve is left to the connect-time check; an allowlisted address passes.
    const named = await post(production, "https://localhost/token");
    expect(named.statusCode).toBe(400);
    expect(named.json().message).toMatch(/^tokenUrl: the host is, or resolves to, a loopback/);
    expect((await post(production, "https://idp.example/token")).statusCode).toBe(201);
    const allowlisted = new EgressPolicy({ allowlist: parseEgressAllowlist("10.0.0.5") });
    expect((await post(allowlisted, "https://10.0.0.5/token")).statusCode).toBe(200);
  });

  it("refuses a placeholder outside the token URL's path", async () => {
    const response = await (await server()).inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: {
        key: "tenant-host",
        provider: "microsoft",
        clientId: "6731de76-14a6-49ae-97bc-6eba6914391e",
        clientSecret: "secret",
        tokenUrl: "https://{tenant}.example.com/oauth2/v2.0/token",
      },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toMatch(/^tokenUrl: .*only sit in the path/);
  });

  it("stores the connect flow's settings: authorization URL and parameters, normalized return URLs", async () => {
    const response = await (await server()).inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: {
        ...google,
        key: "gmail-connect",
        authorizationUrl: "https://accounts.example.com/o/oauth2/auth",
        authorizationParams: { login_hint: "a@example.com", hd: "example.com" },
        returnUrls: ["https://App.Example.com:443/connected", "http://localhost:5173"],
      },
    });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({
      authorizationUrl: "https://accounts.example.com/o/oauth2/auth",
      authorizationParams: { login_hint: "a@example.com", hd: "example.com" },
      returnUrls: ["https://app.example.com/connected", "http://localhost:5173/"],
    });
  });

  it("refuses an http authorization URL, reserved authorization parameters and loose return URLs", async () => {
    const app = await server();
    const post = (extra: Record<string, unknown>) =>
      app.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: auth,
        payload: { ...google, key: "gmail-loose", ...extra },
      });
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ authorizationUrl: "http://accounts.example.com/auth" }, /^authorizationUrl: .*https/],
      [{ authorizationUrl: "https://{tenant}.example.com/auth" }, /^authorizationUrl: .*path/],
      [
        { authorizationParams: { redirect_uri: "https://evil.example" } },
        /^authorizationParams\.redirect_uri: /,
      ],
      [{ authorizationParams: { state: "fixed" } }, /^authorizationParams\.state: /],
      [{ authorizationParams: { "bad name": "x" } }, /^authorizationParams/],
      [{ authorizationParams: { prompt: 1 } }, /^authorizationParams\.prompt: /],
      [{ returnUrls: ["https://app.example.com/done?x=1"] }, /^returnUrls\.0: .*without query/],
      [{ returnUrls: ["https://app.example.com/", "myapp://callback"] }, /^returnUrls\.1: /],
      [{ returnUrls: ["https://user:pw@app.example.com/"] }, /^returnUrls\.0: .*credentials/],
      [{ returnUrls: "https://app.example.com/" }, /^returnUrls: /],
      // Joined with spaces in the authorization URL, this one would be read as two.
      [{ scopes: ["read", "write all"] }, /^scopes\.1: a scope is printable ASCII without spaces/],
      [{ scopes: ["caf\u00e9"] }, /^scopes\.0: /],
    ];
    for (const [extra, message] of cases) {
      const response = await post(extra);
      expect(response.statusCode, JSON.stringify(extra)).toBe(400);
      expect(response.json().message, JSON.stringify(extra)).toMatch(message);
    }
  });

  it("stores a generic integration's revocation URL, held to the token URL's rules", async () => {
    const app = await server();
    const post = (key: string, revocationUrl: string) =>
      app.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: auth,
        payload: {
          ...google,
          key,
          provider: "oauth2",
          clientId: "x",
          tokenUrl: "https://idp.example.com/token",
          revocationUrl,
        },
      });
    const stored = await post("revocable", "https://idp.example.com/revoke");
    expect(stored.statusCode).toBe(201);
    expect(stored.json().revocationUrl).toBe("https://idp.example.com/revoke");
    const cases: [string, RegExp][] = [
      ["http://idp.example.com/revoke", /^revocationUrl: revocation URL must use https/],
      ["https://169.254.169.254/revoke", /^revocationUrl: the host is, or resolves to, a loopback/],
    ];
    for (const [url, message] of cases) {
      const refused = await post("revocable-bad", url);
      expect(refused.statusCode, url).toBe(400);
      expect(refused.json().message, url).toMatch(message);
    }
  });

  it("stores a generic integration's declared refresh token rotation, refused for a catalog provider", async () => {
    const app = await server();
    const post = (payload: Record<string, unknown>) =>
      app.inject({ method: "POST", url: "/v1/integrations", headers: auth, payload });
    const generic = {
      ...google,
      key: "keycloak",
      provider: "oauth2",
      clientId: "x",
      tokenUrl: "https://idp.example.com/token",
    };
    const declared = await post({ ...generic, refreshTokenRotation: "reusable" });
    expect(declared.statusCode).toBe(201);
    expect(declared.json().refreshTokenRotation).toBe("reusable");
    // An upsert without it goes back to learning from answers.
    expect((await post(generic)).json().refreshTokenRotation).toBeNull();
    const catalog = await post({
      ...google,
      key: "google-declared",
      refreshTokenRotation: "rotates",
    });
    expect(catalog.statusCode).toBe(400);
    expect(catalog.json().message).toMatch(/^refreshTokenRotation: only for provider oauth2/);
    const unknown = await post({ ...generic, refreshTokenRotation: "sometimes" });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().message).toMatch(/^refreshTokenRotation: /);
  });

  it("retries the connections in error when the integration is updated", async () => {
    const { connection } = await h.addConnection({ integrationKey: "fixme" });
    const failed = await h.addConnection({ integrationKey: "fixme" });
    const other = await h.addConnection({ integrationKey: "fixme" });
    for (const { id } of [connection, failed.connection]) {
      await h.prisma.connection.update({
        where: { id },
        data: { status: "error", nextRefreshAt: null, lastErrorCode: "invalid_client" },
      });
    }
    await h.prisma.connection.update({
      where: { id: other.connection.id },
      data: { status: "needs_reauth", nextRefreshAt: null },
    });
    const integration = await h.prisma.integration.findUniqueOrThrow({ where: { key: "fixme" } });
    const response = await (await server(true)).inject({
      method: "POST",
      url: "/v1/integrations",
      headers: auth,
      payload: {
        key: "fixme",
        provider: "oauth2",
        clientId: h.provider.clientId,
        clientSecret: h.provider.clientSecret,
        tokenUrl: integration.tokenUrl,
      },
    });
    expect(response.statusCode).toBe(200);

    for (const { id } of [connection, failed.connection]) {
      const row = await h.prisma.connection.findUniqueOrThrow({ where: { id } });
      expect(row).toMatchObject({ status: "active", version: 1 });
      expect(row.nextRefreshAt).not.toBeNull();
      const job = await h.queue.getJob(refreshJobId({ connectionId: id, version: 1 }));
      expect(await job?.getState()).toBe("waiting");
    }
    // A dead grant stays dead: only new tokens from the app revive it.
    const untouched = await h.prisma.connection.findUniqueOrThrow({
      where: { id: other.connection.id },
    });
    expect(untouched).toMatchObject({ status: "needs_reauth", version: 0 });
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

describe("first registrations of one integration at once", () => {
  it("store a client secret that refreshes, through the real HTTP server (10 parallel pairs)", async () => {
    const app = await server(true);
    await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      const { port } = app.server.address() as { port: number };
      const post = (path: string, body: object) =>
        fetch(`http://127.0.0.1:${port}${path}`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const keys = Array.from({ length: 10 }, (_, n) => `pair-${n}`);
      const answers = await Promise.all(
        keys.flatMap((key) =>
          [1, 2].map(async () => {
            const response = await post("/v1/integrations", {
              key,
              provider: "oauth2",
              clientId: h.provider.clientId,
              clientSecret: h.provider.clientSecret,
              tokenUrl: h.provider.tokenUrl,
            });
            return { key, status: response.status };
          }),
        ),
      );
      for (const key of keys) {
        const statuses = answers.filter((a) => a.key === key).map((a) => a.status);
        expect(statuses.sort()).toEqual([200, 201]);
        const grant = h.provider.issueGrant();
        const connection = await post("/v1/connections", {
          integration: key,
          externalId: "user",
          accessToken: grant.accessToken,
          refreshToken: grant.refreshToken,
        });
        const { id } = (await connection.json()) as { id: string };
        const refreshed = await post(`/v1/connections/${id}/refresh`, {});
        expect(refreshed.status).toBe(200);
        expect(h.provider.grant(grant.grantId)?.refreshes).toBe(1);
      }
    } finally {
      await app.close();
    }
  });
});

describe("unknown fields and keys", () => {
  it.each([
    [
      "POST",
      "/v1/integrations",
      { ...google, key: "strict", client_secret: "x" },
      /^client_secret: unknown field$/,
    ],
    ["POST", "/v1/integrations?dryRun=1", { ...google, key: "strict" }, /^dryRun: unknown field$/],
    ["GET", "/v1/integrations?provider=google", undefined, /^provider: unknown field$/],
    ["GET", "/v1/integrations/gmail?expand=1", undefined, /^expand: unknown field$/],
    ["DELETE", "/v1/integrations/strict?force=1", undefined, /^force: unknown field$/],
  ] as const)("%s %s refuses an unknown field by name", async (method, url, payload, message) => {
    const app = await server();
    const response = await app.inject({
      method,
      url,
      headers: auth,
      ...(payload ? { payload } : {}),
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toMatch(message);
    expect(response.body).not.toContain("GOCSPX");
    expect(await h.prisma.integration.count({ where: { key: "strict" } })).toBe(0);
  });

  it.each(["Bad Key", "%00", "%ff", "a".repeat(300), "k".repeat(65)])(
    "answers 404 not_found for the key %s, as for any unknown key",
    async (key) => {
      const app = await server();
      for (const method of ["GET", "DELETE"] as const) {
        const response = await app.inject({
          method,
          url: `/v1/integrations/${key}`,
          headers: auth,
        });
        expect(response.statusCode).toBe(404);
        expect(response.json()).toMatchObject({ error: "not_found" });
      }
    },
  );
});

describe("GET and DELETE /v1/integrations", () => {
  it("lists, reads, refuses to delete while connections or their revocations exist, then deletes", async () => {
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

    const row = await h.prisma.integration.findUniqueOrThrow({ where: { key: "cal" } });
    const connection = await h.prisma.connection.create({
      data: { integrationId: row.id, externalId: "u1", accessToken: "ev1.t.x" },
    });
    const refused = await app.inject({
      method: "DELETE",
      url: "/v1/integrations/cal",
      headers: auth,
    });
    expect(refused.statusCode).toBe(409);
    // Its grant still to revoke: the revocation needs the integration's credentials.
    const pending = await h.prisma.pendingRevocation.create({
      data: {
        id: crypto.randomUUID(),
        connectionId: connection.id,
        integrationId: row.id,
        token: connection.accessToken,
        tokenType: "access_token",
        giveUpAt: new Date(Date.now() + 3_600_000),
      },
    });
    await h.prisma.connection.delete({ where: { id: connection.id } });
    const waiting = await app.inject({
      method: "DELETE",
      url: "/v1/integrations/cal",
      headers: auth,
    });
    expect(waiting.statusCode).toBe(409);
    expect(waiting.json().message).toMatch(/still pending at the provider: 1;/);
    await h.prisma.pendingRevocation.delete({ where: { id: pending.id } });
    const deleted = await app.inject({
      method: "DELETE",
      url: "/v1/integrations/cal",
      headers: auth,
    });
    expect(deleted.statusCode).toBe(204);
    expect(await h.prisma.integration.count({ where: { key: "cal" } })).toBe(0);
  });

  it("answers concurrent deletes with one 204 and 404s, and a delete racing registrations with 204 or 409, never 500", async () => {
    const app = await server();
    const upsert = (key: string) =>
      app.inject({
        method: "POST",
        url: "/v1/integrations",
        headers: auth,
        payload: { ...google, key },
      });
    const remove = (key: string) =>
      app.inject({ method: "DELETE", url: `/v1/integrations/${key}`, headers: auth });
    await upsert("twice");
    const statuses = (await Promise.all(Array.from({ length: 6 }, () => remove("twice"))))
      .map((answer) => answer.statusCode)
      .sort();
    expect(statuses).toEqual([204, 404, 404, 404, 404, 404]);

    for (let round = 0; round < 5; round += 1) {
      await upsert("racing");
      const [removed, ...registered] = await Promise.all([
        remove("racing"),
        ...Array.from({ length: 4 }, (_, n) =>
          app.inject({
            method: "POST",
            url: "/v1/connections",
            headers: auth,
            payload: { integration: "racing", externalId: `u${round}-${n}`, accessToken: "at" },
          }),
        ),
      ]);
      // Registered first: the delete is refused; deleted first: the integration is unknown.
      expect([204, 409]).toContain(removed?.statusCode);
      for (const answer of registered) {
        expect([201, 400]).toContain(answer.statusCode);
        if (answer.statusCode === 400) expect(answer.json().message).toMatch(/^integration: /);
      }
      await h.prisma.connection.deleteMany({ where: { integration: { key: "racing" } } });
      await h.prisma.integration.deleteMany({ where: { key: "racing" } });
    }
  });
});
