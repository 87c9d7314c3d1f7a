import { Writable } from "node:stream";
import type { RedisClient } from "@evergreen/redis";
import { createRedis } from "@evergreen/redis";
import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  revocationTestQueue,
  SCOPED_KEYS,
  TEST_API_KEY,
  TEST_API_KEYS,
  testMetrics,
  testServer,
} from "../test-server";
import { TokenService } from "../token-service";
import { registerAdminConsole } from "./admin-console";
import { FleetStats } from "./fleet-stats";
import { AdminSessions } from "./session";

const XSS = `<script>alert("x")</script><img src=x onerror=alert(1)>`;

let h: RefreshHarness;
let app: FastifyInstance;
const auditLines: Record<string, unknown>[] = [];

/** An api with the console, its sessions kept in `sessionRedis`. */
function consoleServer(sessionRedis: RedisClient) {
  return testServer({
    audit: new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split("\n").filter(Boolean)) {
          auditLines.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    }),
    routes: [
      (instance) =>
        registerAdminConsole(instance, {
          prisma: h.prisma,
          refresh: h.deps,
          tokens: new TokenService(h.deps, h.prisma, testMetrics().http),
          revocations: revocationTestQueue(instance, h),
          apiKeys: TEST_API_KEYS,
          sessions: new AdminSessions(sessionRedis, TEST_API_KEYS, {
            prefix: `${h.prefix}:admin:`,
          }),
          fleet: new FleetStats(h.prisma, { onError: (error) => console.error(error) }),
          secureCookie: true,
        }),
    ],
  });
}

beforeAll(async () => {
  h = await createRefreshHarness();
  app = await consoleServer(h.redis);
});
afterAll(async () => {
  await app?.close();
  await h?.close();
});

/** The sign-in form's token cookie and hidden field, as a browser gets them. */
async function signInForm() {
  const form = await app.inject({ method: "GET", url: "/admin/login" });
  return {
    cookie: String(form.headers["set-cookie"]).split(";")[0] ?? "",
    csrf: /name="csrf" value="([^"]+)"/.exec(form.body)?.[1] ?? "",
  };
}

/** Posts the sign-in form with `key`, as a browser that loaded it does. */
async function postSignIn(key: string) {
  const form = await signInForm();
  return post("/admin/login", form.cookie, { csrf: form.csrf, key });
}

/** Signs in with `key`; the session cookie and the page's CSRF token. */
async function signIn(key: string = SCOPED_KEYS.admin) {
  const login = await postSignIn(key);
  expect(login.statusCode).toBe(303);
  const cookie = String(login.headers["set-cookie"]).split(";")[0] ?? "";
  const overview = await app.inject({ method: "GET", url: "/admin", headers: { cookie } });
  const csrf = /name="csrf" value="([^"]+)"/.exec(overview.body)?.[1] ?? "";
  return { cookie, csrf, login };
}

function post(url: string, cookie: string, fields: Record<string, string>) {
  return app.inject({
    method: "POST",
    url,
    payload: new URLSearchParams(fields).toString(),
    headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
  });
}

describe("admin console", () => {
  it("sends every page, sign-in included, with a strict policy and no caching", async () => {
    const { cookie } = await signIn();
    for (const [url, headers] of [
      ["/admin/login", {}],
      ["/admin", { cookie }],
      ["/admin/connections", { cookie }],
    ] as const) {
      const response = await app.inject({ method: "GET", url, headers });
      expect(response.statusCode, url).toBe(200);
      const csp = String(response.headers["content-security-policy"]);
      for (const directive of [
        "default-src 'none'",
        "style-src 'self'",
        "script-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
      ]) {
        expect(csp, url).toContain(directive);
      }
      expect(response.headers["x-content-type-options"]).toBe("nosniff");
      expect(response.headers["referrer-policy"]).toBe("no-referrer");
      expect(response.headers["cache-control"]).toBe("no-store");
      // No inline script or style for the policy to refuse.
      expect(response.body).not.toMatch(/<script>|<style|style=/);
    }
  });

  it("sets an HttpOnly, Secure, SameSite=Strict session cookie for an admin key", async () => {
    const { login } = await signIn();
    const [session, form] = [login.headers["set-cookie"]].flat();
    expect(session).toMatch(
      /^evergreen_admin=[\w-]{43}; Path=\/admin; HttpOnly; SameSite=Strict; Max-Age=3600; Secure$/,
    );
    // The sign-in form's token is spent.
    expect(form).toMatch(/^evergreen_admin_login=; Path=\/admin\/login; .*Max-Age=0/);
    expect(auditLines).toContainEqual(
      expect.objectContaining({ kind: "security", event: "admin_login", keyName: "admin" }),
    );
  });

  it("refuses a tokens:read or connections:write key at sign-in, as a security event", async () => {
    for (const [scope, keyName] of [
      ["tokens:read", "reader"],
      ["connections:write", "writer"],
    ] as const) {
      const response = await postSignIn(SCOPED_KEYS[scope]);
      expect(response.statusCode, scope).toBe(403);
      expect(String(response.headers["set-cookie"])).not.toMatch(/evergreen_admin=/);
      expect(response.body).toContain("lacks the admin scope");
      expect(response.body).not.toContain(SCOPED_KEYS[scope]);
      expect(auditLines).toContainEqual(
        expect.objectContaining({ event: "admin_login_refused", keyName }),
      );
    }
  });

  it("refuses an unknown key, audited like a rejected API key, without echoing it", async () => {
    const response = await postSignIn("not-a-key-0123456789");
    expect(response.statusCode).toBe(401);
    expect(response.body).not.toContain("not-a-key-0123456789");
    expect(auditLines).toContainEqual(
      expect.objectContaining({ event: "api_key_rejected", route: "/admin/login" }),
    );
  });

  it("refuses a sign-in without the form's own token, even with an admin key", async () => {
    const form = await signInForm();
    for (const [cookie, csrf] of [
      ["", form.csrf],
      [form.cookie, ""],
      [form.cookie, "forged"],
    ] as const) {
      const response = await post("/admin/login", cookie, { csrf, key: SCOPED_KEYS.admin });
      expect(response.statusCode).toBe(403);
      expect(String(response.headers["set-cookie"])).not.toMatch(/^evergreen_admin=/);
    }
  });

  it("takes forms only: a JSON body at sign-in is a 415, never parsed", async () => {
    const form = await signInForm();
    const response = await app.inject({
      method: "POST",
      url: "/admin/login",
      headers: { cookie: form.cookie, "content-type": "application/json" },
      payload: JSON.stringify({ csrf: form.csrf, key: SCOPED_KEYS.admin, __proto__x: 1 }),
    });
    expect(response.statusCode).toBe(415);
    expect(String(response.headers["set-cookie"])).not.toMatch(/^evergreen_admin=/);
  });

  it("sends pages without a session to sign-in, and never accepts a bearer key instead", async () => {
    const response = await app.inject({
      method: "GET",
      url: "/admin",
      headers: { authorization: `Bearer ${TEST_API_KEY}` },
    });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe("/admin/login");
  });

  it("refuses an action without the session's CSRF token, and changes nothing", async () => {
    const { connection } = await h.addConnection();
    const { cookie, csrf } = await signIn();
    expect(csrf).toMatch(/^[\w-]{43}$/);
    for (const fields of [{}, { csrf: "forged" }] as Record<string, string>[]) {
      const response = await post(`/admin/connections/${connection.id}/delete`, cookie, fields);
      expect(response.statusCode).toBe(403);
    }
    expect(await h.prisma.connection.findUnique({ where: { id: connection.id } })).not.toBeNull();
    // Another session's token is no good either.
    const other = await signIn();
    const crossed = await post(`/admin/connections/${connection.id}/delete`, cookie, {
      csrf: other.csrf,
    });
    expect(crossed.statusCode).toBe(403);
  });

  it("deletes with the token, recording the action under the key's name", async () => {
    const { connection } = await h.addConnection();
    const { cookie, csrf } = await signIn();
    const confirm = await app.inject({
      method: "GET",
      url: `/admin/connections/${connection.id}/delete`,
      headers: { cookie },
    });
    expect(confirm.body).toContain("cannot be undone");
    const response = await post(`/admin/connections/${connection.id}/delete`, cookie, { csrf });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe("/admin/connections?deleted=1");
    expect(await h.prisma.connection.findUnique({ where: { id: connection.id } })).toBeNull();
    expect(auditLines).toContainEqual(
      expect.objectContaining({
        event: "admin_action",
        action: "delete",
        connectionId: connection.id,
        outcome: "deleted",
        keyName: "admin",
      }),
    );
  });

  it("renders an external id and a provider's error message inert", async () => {
    const { connection } = await h.addConnection();
    await h.prisma.connection.update({
      where: { id: connection.id },
      data: {
        externalId: XSS,
        lastErrorCode: "unknown",
        lastErrorMessage: `provider said ${XSS}`,
        lastErrorAt: new Date(),
      },
    });
    const { cookie } = await signIn();
    const page = await app.inject({
      method: "GET",
      url: `/admin/connections/${connection.id}`,
      headers: { cookie },
    });
    const list = await app.inject({
      method: "GET",
      url: "/admin/connections",
      headers: { cookie },
    });
    for (const body of [page.body, list.body]) {
      expect(body).not.toContain("<script>alert");
      expect(body).not.toContain("<img src=x");
      expect(body).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    }
    expect(page.body).toContain("provider said &lt;script&gt;");
  });

  it("never shows a token", async () => {
    const { connection, grant } = await h.addConnection();
    const { cookie } = await signIn();
    const page = await app.inject({
      method: "GET",
      url: `/admin/connections/${connection.id}`,
      headers: { cookie },
    });
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain(grant.accessToken);
    expect(page.body).not.toContain(grant.refreshToken);
    expect(page.body).not.toContain(connection.accessToken);
  });

  it("counts console requests by route template, and leaves them out of the OpenAPI document", async () => {
    const { connection } = await h.addConnection();
    const { cookie } = await signIn();
    await app.inject({
      method: "GET",
      url: `/admin/connections/${connection.id}`,
      headers: { cookie },
    });
    const scrape = await app.inject({ method: "GET", url: "/metrics" });
    // Other tests here read connection pages too: the count is theirs and this one's.
    expect(scrape.body).toMatch(
      /evergreen_http_requests_total\{route="\/admin\/connections\/:id",method="GET",status="200"\} [1-9]/,
    );
    expect(scrape.body).not.toContain(connection.id);
    const document = await app.inject({ method: "GET", url: "/openapi.json" });
    expect(Object.keys(document.json().paths).filter((path) => path.startsWith("/admin"))).toEqual(
      [],
    );
  });

  it("renews the session cookie on every page: an hour idle ends it, not an hour since sign-in", async () => {
    const { cookie } = await signIn();
    for (const url of ["/admin", "/admin/connections", "/admin/integrations"]) {
      const response = await app.inject({ method: "GET", url, headers: { cookie } });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers["set-cookie"], url).toBe(
        `${cookie}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=3600; Secure`,
      );
    }
    // No session, no cookie.
    const signedOut = await app.inject({ method: "GET", url: "/admin" });
    expect(signedOut.headers["set-cookie"]).toBeUndefined();
  });

  it("answers any other /admin path with its own 404 page under the console's headers", async () => {
    const { cookie, csrf } = await signIn();
    for (const [method, url] of [
      ["GET", "/admin/nope"],
      ["GET", "/admin/logout"],
      ["POST", "/admin/nope"],
      ["DELETE", "/admin/connections"],
      // Past the router's 100-character parameters.
      ["GET", `/admin/connections/${"a".repeat(150)}`],
      ["GET", `/admin/integrations/${"<script>".repeat(20)}`],
    ] as const) {
      const response = await app.inject({
        method,
        url,
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        ...(method === "GET" ? {} : { payload: new URLSearchParams({ csrf }).toString() }),
      });
      expect(response.statusCode, url).toBe(404);
      expect(response.headers["content-type"], url).toBe("text/html; charset=utf-8");
      expect(String(response.headers["content-security-policy"]), url).toContain(
        "frame-ancestors 'none'",
      );
      expect(response.headers["cache-control"], url).toBe("no-store");
      expect(response.body, url).not.toContain("<script>");
    }
  });

  it("shows only its own outcome words, not Object's (?result=constructor)", async () => {
    const { connection } = await h.addConnection();
    const { cookie } = await signIn();
    for (const result of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const response = await app.inject({
        method: "GET",
        url: `/admin/connections/${connection.id}?result=${result}`,
        headers: { cookie },
      });
      expect(response.statusCode, result).toBe(200);
      expect(response.body, result).not.toContain('class="notice');
    }
  });

  it("ends the browser's previous session when it signs in again", async () => {
    const first = await signIn();
    const form = await signInForm();
    const again = await post("/admin/login", `${first.cookie}; ${form.cookie}`, {
      csrf: form.csrf,
      key: SCOPED_KEYS.admin,
    });
    expect(again.statusCode).toBe(303);
    const second = String(again.headers["set-cookie"]).split(";")[0] ?? "";
    expect(second).not.toBe(first.cookie);
    const old = await app.inject({
      method: "GET",
      url: "/admin",
      headers: { cookie: first.cookie },
    });
    expect(old.statusCode).toBe(303);
    const current = await app.inject({ method: "GET", url: "/admin", headers: { cookie: second } });
    expect(current.statusCode).toBe(200);
  });

  it("sends a HEAD without a session to sign-in, as its GET", async () => {
    const response = await app.inject({ method: "HEAD", url: "/admin/connections" });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe("/admin/login");
  });

  it("ends a session at sign-out: its cookie opens nothing afterwards", async () => {
    const { cookie, csrf } = await signIn();
    const out = await post("/admin/logout", cookie, { csrf });
    expect(out.statusCode).toBe(303);
    // Only the header that drops the cookie, not the renewal of the session it ends.
    expect(out.headers["set-cookie"]).toMatch(/^evergreen_admin=; Path=\/admin; .*Max-Age=0/);
    const after = await app.inject({ method: "GET", url: "/admin", headers: { cookie } });
    expect(after.statusCode).toBe(303);
  });
});

describe("admin console with its Redis unreachable", () => {
  it("answers sign-in and pages with a clear 503 page, no stack, and when to retry", async () => {
    // Nothing listens on port 1: every command fails as it does in a Redis outage.
    const down = createRedis("redis://127.0.0.1:1", "producer");
    down.on("error", () => undefined);
    const outage = await consoleServer(down);
    try {
      const form = await outage.inject({ method: "GET", url: "/admin/login" });
      expect(form.statusCode).toBe(200);
      const cookie = String(form.headers["set-cookie"]).split(";")[0] ?? "";
      const csrf = /name="csrf" value="([^"]+)"/.exec(form.body)?.[1] ?? "";
      const signIn = await outage.inject({
        method: "POST",
        url: "/admin/login",
        payload: new URLSearchParams({ csrf, key: SCOPED_KEYS.admin }).toString(),
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      });
      const page = await outage.inject({
        method: "GET",
        url: "/admin",
        headers: { cookie: `evergreen_admin=${"A".repeat(43)}` },
      });
      for (const response of [signIn, page]) {
        expect(response.statusCode).toBe(503);
        expect(response.headers["retry-after"]).toBe("5");
        expect(response.headers["content-type"]).toBe("text/html; charset=utf-8");
        expect(String(response.headers["content-security-policy"])).toContain("default-src 'none'");
        expect(response.body).toContain("A backing service is unreachable; retry shortly.");
        expect(response.body).not.toMatch(/MaxRetriesPerRequest|ECONNREFUSED|\bat \S+ \(/);
        expect(response.body).not.toContain(SCOPED_KEYS.admin);
      }
    } finally {
      await outage.close();
      down.disconnect();
    }
  });
});

describe("AdminSessions", () => {
  it("ends a session once its key is no longer an admin key in API_KEYS", async () => {
    const prefix = `${h.prefix}:sessions:`;
    const admin = TEST_API_KEYS.find((key) => key.name === "admin");
    if (!admin) throw new Error("no admin key");
    const before = new AdminSessions(h.redis, TEST_API_KEYS, { prefix });
    const session = await before.create(admin);
    expect(await before.find(session.id)).toMatchObject({ keyName: "admin" });
    // The api restarted with the key removed.
    const after = new AdminSessions(
      h.redis,
      TEST_API_KEYS.filter((key) => key !== admin),
      { prefix },
    );
    expect(await after.find(session.id)).toBeUndefined();
    // And it is gone for good, not only refused.
    expect(await before.find(session.id)).toBeUndefined();
  });

  it("ends a session past its maximum age however active", async () => {
    let now = Date.now();
    const admin = TEST_API_KEYS.find((key) => key.name === "admin");
    if (!admin) throw new Error("no admin key");
    const sessions = new AdminSessions(h.redis, TEST_API_KEYS, {
      prefix: `${h.prefix}:aged:`,
      maxAgeMs: 1000,
      now: () => now,
    });
    const session = await sessions.create(admin);
    expect(await sessions.find(session.id)).toBeDefined();
    now += 1001;
    expect(await sessions.find(session.id)).toBeUndefined();
  });
});
