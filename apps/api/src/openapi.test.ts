import { readFileSync } from "node:fs";
import { createRefreshHarness, type RefreshHarness } from "@evergreen/refresh/testing";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_ROUTES, type OpenApiDocument } from "./openapi";
import { AUTH, connectTestServer } from "./test-server";

const COMMITTED = new URL("../../../packages/client/openapi.json", import.meta.url);

let h: RefreshHarness;
let app: FastifyInstance;
/** `METHOD /url` of every route the server registered, with its declared scope. */
const registered = new Map<string, unknown>();
let document: OpenApiDocument;

beforeAll(async () => {
  h = await createRefreshHarness();
  app = await connectTestServer(h, "https://evergreen.test", {
    before: [
      (instance) =>
        instance.addHook("onRoute", (route) => {
          if (route.method === "HEAD") return;
          registered.set(`${String(route.method)} ${route.url}`, route.config?.scope ?? "public");
        }),
    ],
  });
  const response = await app.inject({ url: "/openapi.json" });
  expect(response.statusCode).toBe(200);
  document = response.json<OpenApiDocument>();
});
afterAll(async () => {
  await app.close();
  await h.close();
});

/** Every operation of the document as `METHOD /fastify/:template`. */
function operations() {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      key: `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`,
      path,
      operation,
    })),
  );
}

describe("GET /openapi.json", () => {
  it("is public and OpenAPI 3.1 with a bearer scheme", () => {
    expect(document.openapi).toBe("3.1.0");
    expect(document.info.title).toBe("Evergreen");
    expect(document.components.securitySchemes.bearer).toMatchObject({
      type: "http",
      scheme: "bearer",
    });
    expect(document.security).toEqual([{ bearer: [] }]);
  });

  it("documents exactly the routes the server registers, each with its method and scope", () => {
    const documented = new Map(
      operations().map(({ key, operation }) => [
        key,
        operation["x-required-scope"] ?? (operation.security.length === 0 ? "public" : undefined),
      ]),
    );
    expect(registered.size).toBeGreaterThan(10);
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(registered));
    // The declarations the document is built from are the ones registered.
    const declared = Object.values(API_ROUTES).flatMap((group) =>
      Object.values(group).map((route) => `${route.method} ${route.url}`),
    );
    expect(declared.sort()).toEqual([...registered.keys()].sort());
  });

  it("marks the public routes public and every other one bearer-authenticated", () => {
    const publicOnes = operations()
      .filter(({ operation }) => operation.security.length === 0)
      .map(({ key }) => key)
      .sort();
    expect(publicOnes).toEqual([
      "GET /docs",
      "GET /healthz",
      "GET /metrics",
      "GET /oauth/callback",
      "GET /openapi.json",
      "GET /readyz",
    ]);
    for (const { key, operation } of operations()) {
      if (operation.security.length === 0) continue;
      expect(operation.security, key).toEqual([{ bearer: [] }]);
      expect(operation.description, key).toMatch(/Requires the .+ scope\./);
      expect(operation.responses, key).toHaveProperty("401");
      expect(operation.responses, key).toHaveProperty("403");
    }
  });

  it("lists each path parameter of a path as a required parameter", () => {
    for (const { key, path, operation } of operations()) {
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => name);
      const declared = (operation.parameters ?? [])
        .filter((parameter) => parameter.in === "path")
        .map((parameter) => {
          expect(parameter.required, key).toBe(true);
          return parameter.name;
        });
      expect(declared, key).toEqual(inPath);
      if (inPath.length > 0) expect(operation.responses, key).toHaveProperty("404");
    }
    const token = document.paths["/v1/connections/{id}/token"]?.get;
    expect(token?.parameters?.map(({ name, in: where }) => `${where}:${name}`)).toEqual([
      "path:id",
      "query:minValidity",
    ]);
  });

  it("resolves every $ref to a schema of the document", () => {
    const refs = new Set<string>();
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value && typeof value === "object") {
        for (const [name, child] of Object.entries(value)) {
          if (name === "$ref") refs.add(String(child));
          else walk(child);
        }
      }
    };
    walk(document);
    expect(refs.size).toBeGreaterThan(5);
    for (const ref of refs) {
      expect(ref).toMatch(/^#\/components\/schemas\/\w+$/);
      expect(document.components.schemas, ref).toHaveProperty(ref.split("/").at(-1) ?? "");
    }
    // JSON Schema 2020-12 inside OpenAPI 3.1: no draft-4 leftovers.
    expect(JSON.stringify(document)).not.toMatch(/"nullable"|"\$schema"|"definitions"/);
  });

  it("is the document committed for the SDK (npm run openapi writes it)", () => {
    const committed = JSON.parse(readFileSync(COMMITTED, "utf8"));
    expect(committed, "packages/client/openapi.json is stale: run `npm run openapi`").toEqual(
      document,
    );
  });
});

describe("a route's declaration is what validates it", () => {
  const schema = () =>
    document.components.schemas.ConnectionInput as {
      properties: Record<string, unknown>;
      required: string[];
      additionalProperties: boolean;
    };
  const valid = { integration: "mock", externalId: "user-1", accessToken: "token" };

  it("refuses a field the document does not list, naming it", async () => {
    expect(schema().additionalProperties).toBe(false);
    expect(schema().properties).not.toHaveProperty("access_token");
    const response = await app.inject({
      method: "POST",
      url: "/v1/connections",
      headers: AUTH,
      payload: { ...valid, access_token: "token" },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: "invalid_request",
      message: "access_token: unknown field",
    });
  });

  it("requires exactly the fields the document marks required", async () => {
    expect(schema().required.sort()).toEqual(Object.keys(valid).sort());
    for (const field of schema().required) {
      const { [field as keyof typeof valid]: _, ...rest } = valid;
      const response = await app.inject({
        method: "POST",
        url: "/v1/connections",
        headers: AUTH,
        payload: rest,
      });
      expect(response.statusCode, field).toBe(400);
      expect(response.json<{ message: string }>().message, field).toMatch(
        new RegExp(`^${field}: `),
      );
    }
  });
});

describe("GET /docs", () => {
  it("is a self-contained page of every operation, under a policy that runs no script", async () => {
    const response = await app.inject({ url: "/docs" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/html; charset=utf-8");
    const policy = String(response.headers["content-security-policy"]);
    expect(policy).toContain("default-src 'none'");
    expect(policy).not.toContain("unsafe-inline");
    expect(response.headers["x-content-type-options"]).toBe("nosniff");
    expect(response.body).not.toMatch(/<script|src=|https?:\/\/(?!json-schema)/);
    for (const { path } of operations()) expect(response.body).toContain(`<code>${path}</code>`);
    expect(response.body).toContain('<section id="Connection">');
  });
});
