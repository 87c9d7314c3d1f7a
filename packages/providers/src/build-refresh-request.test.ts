import { describe, expect, it } from "vitest";
import { buildRefreshRequest, checkTokenUrl, connectionTokenHost } from "./build-refresh-request";
import { ProviderConfigError } from "./errors";
import { PROVIDERS } from "./registry";
import { type IntegrationSettings, isProviderId, PROVIDER_IDS, type ProviderId } from "./types";

const grant = { refreshToken: "rt-123" };
const generic: IntegrationSettings = {
  provider: "oauth2",
  clientId: "client",
  clientSecret: "secret",
  tokenUrl: "https://auth.example.com/oauth/token",
};

function problemOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof ProviderConfigError) return error.problem;
    throw error;
  }
  throw new Error("expected a ProviderConfigError");
}

describe("PROVIDERS", () => {
  it("registers every provider id under its own id", () => {
    expect(Object.keys(PROVIDERS).sort()).toEqual([...PROVIDER_IDS].sort());
    for (const id of PROVIDER_IDS) expect(PROVIDERS[id].id).toBe(id);
  });

  it("recognises provider ids only", () => {
    expect(isProviderId("google")).toBe(true);
    expect(isProviderId("myspace")).toBe(false);
    expect(isProviderId("toString")).toBe(false);
  });

  it("has an https token URL for every catalog provider", () => {
    for (const id of PROVIDER_IDS.filter(
      (p): p is Exclude<ProviderId, "oauth2"> => p !== "oauth2",
    )) {
      expect(PROVIDERS[id].tokenUrl?.startsWith("https://")).toBe(true);
    }
  });
});

describe("buildRefreshRequest", () => {
  it("uses the integration's token URL for oauth2, with Basic auth and a form body", () => {
    const request = buildRefreshRequest(generic, grant);
    expect(request).toEqual({
      url: "https://auth.example.com/oauth/token",
      method: "POST",
      headers: {
        accept: "application/json",
        authorization: `Basic ${Buffer.from("client:secret").toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "grant_type=refresh_token&refresh_token=rt-123",
    });
  });

  it("form-urlencodes client id and secret before base64 (RFC 6749 §2.3.1)", () => {
    const request = buildRefreshRequest(
      { ...generic, clientId: "id:with space", clientSecret: "s3cr%t:+/&é" },
      grant,
    );
    const encoded = request.headers.authorization?.replace(/^Basic /, "") ?? "";
    expect(Buffer.from(encoded, "base64").toString("utf8")).toBe(
      "id%3Awith+space:s3cr%25t%3A%2B%2F%26%C3%A9",
    );
  });

  it("honours clientAuth and bodyFormat overrides", () => {
    const request = buildRefreshRequest(
      { ...generic, clientAuth: "body", bodyFormat: "json" },
      { refreshToken: 'rt "quoted" & more' },
    );
    expect(request.headers).toEqual({
      accept: "application/json",
      "content-type": "application/json",
    });
    expect(JSON.parse(request.body)).toEqual({
      grant_type: "refresh_token",
      refresh_token: 'rt "quoted" & more',
      client_id: "client",
      client_secret: "secret",
    });
  });

  it("sends no client_secret for a public client with body auth", () => {
    const request = buildRefreshRequest(
      { ...generic, clientAuth: "body", clientSecret: "" },
      grant,
    );
    expect(Object.fromEntries(new URLSearchParams(request.body))).toEqual({
      grant_type: "refresh_token",
      refresh_token: "rt-123",
      client_id: "client",
    });
  });

  it("lets the integration override a catalog provider's token URL", () => {
    const request = buildRefreshRequest(
      { ...generic, provider: "google", tokenUrl: "https://proxy.example.com/token" },
      grant,
    );
    expect(request.url).toBe("https://proxy.example.com/token");
  });

  it("refuses oauth2 without a token URL", () => {
    expect(problemOf(() => buildRefreshRequest({ ...generic, tokenUrl: null }, grant))).toBe(
      "missing_token_url",
    );
    expect(problemOf(() => buildRefreshRequest({ ...generic, tokenUrl: "  " }, grant))).toBe(
      "missing_token_url",
    );
  });

  it("refuses http:// unless insecure URLs are allowed, or loopback ones are", () => {
    const local = { ...generic, tokenUrl: "http://127.0.0.1:8080/token" };
    expect(problemOf(() => buildRefreshRequest(local, grant))).toBe("insecure_token_url");
    expect(buildRefreshRequest(local, grant, { allowInsecureTokenUrls: true }).url).toBe(
      "http://127.0.0.1:8080/token",
    );
    const remote = { ...generic, tokenUrl: "http://auth.example.com/token" };
    for (const host of ["127.0.0.1:8080", "localhost", "[::1]:9000", "127.1.2.3"]) {
      const loopback = { ...generic, tokenUrl: `http://${host}/token` };
      expect(buildRefreshRequest(loopback, grant, { allowInsecureTokenUrls: "loopback" }).url).toBe(
        `http://${host}/token`,
      );
    }
    expect(
      problemOf(() => buildRefreshRequest(remote, grant, { allowInsecureTokenUrls: "loopback" })),
    ).toBe("insecure_token_url");
    const spoof = { ...generic, tokenUrl: "http://127.0.0.1.evil.example/token" };
    expect(
      problemOf(() => buildRefreshRequest(spoof, grant, { allowInsecureTokenUrls: "loopback" })),
    ).toBe("insecure_token_url");
    const ftp = { ...generic, tokenUrl: "ftp://example.com/token" };
    expect(problemOf(() => buildRefreshRequest(ftp, grant, { allowInsecureTokenUrls: true }))).toBe(
      "invalid_token_url",
    );
  });

  it("refuses malformed URLs, URLs with credentials and unresolved placeholders", () => {
    const cases: Array<[string, string]> = [
      ["not a url", "invalid_token_url"],
      ["https://user:pass@auth.example.com/token", "invalid_token_url"],
      ["https://auth.example.com/{tenant}/token", "unresolved_placeholder"],
    ];
    for (const [tokenUrl, problem] of cases) {
      expect(problemOf(() => buildRefreshRequest({ ...generic, tokenUrl }, grant))).toBe(problem);
    }
  });

  it("keeps an integration's placeholders in the path, so metadata cannot pick the host", () => {
    const microsoft = { ...generic, provider: "microsoft" as const };
    const tenant = { refreshToken: "rt", metadata: { tenant: "contoso.example" } };
    expect(
      buildRefreshRequest(
        { ...microsoft, tokenUrl: "https://login.example.com/{tenant}/token" },
        tenant,
      ).url,
    ).toBe("https://login.example.com/contoso.example/token");
    for (const tokenUrl of [
      "https://{tenant}/token",
      "https://login.{tenant}/token",
      "https://login.example.com:{tenant}/token",
      "{tenant}://login.example.com/token",
      "https://{tenant}@login.example.com/token",
      "https:\\{tenant}\\token",
      "https://login.example.com/token?tenant={tenant}",
      "https://login.example.com/token#{tenant}",
      // The URL parser skips any number of slashes after a special scheme: these hosts are
      // the placeholder, although a naive split puts it in the path.
      "https:/{tenant}/token",
      "https:///{tenant}/token",
      "HTTPS:////{tenant}/token",
    ]) {
      expect(
        problemOf(() => buildRefreshRequest({ ...microsoft, tokenUrl }, tenant)),
        tokenUrl,
      ).toBe("placeholder_outside_path");
      expect(
        problemOf(() => checkTokenUrl("microsoft", tokenUrl)),
        tokenUrl,
      ).toBe("placeholder_outside_path");
    }
    // Not a URL with the braces, a URL with a port once metadata fills them in.
    const port = { refreshToken: "rt", metadata: { tenant: "8443" } };
    const portTemplate = "https:/login.example.com:{tenant}/token";
    expect(
      problemOf(() => buildRefreshRequest({ ...microsoft, tokenUrl: portTemplate }, port)),
    ).toBe("invalid_token_url");
  });

  it("names a scheme that is no web URL's, even where http:// is allowed", () => {
    for (const allowInsecure of [false, true] as const) {
      expect(() => checkTokenUrl("oauth2", "ftp://idp.example/token", allowInsecure)).toThrow(
        "token URL must be an https URL, not ftp:",
      );
    }
    expect(checkTokenUrl("oauth2", "http://idp.example/token", true)).toBe(
      "http://idp.example/token",
    );
  });

  it("puts a catalog placeholder in a host only with a fixed map or a pattern no hostile host passes", () => {
    // Shopify's shop, Okta's org and Salesforce's My Domain are open-ended names, so their
    // rules are patterns; none may let metadata add a host, port, userinfo, path or query.
    const hostile = [
      "evil.com",
      "evil.com#",
      "evil.com?",
      "evil.com/",
      "..",
      "a@evil.com",
      "a:1",
      "127.0.0.1",
      "[::1]",
      "ｅvil.com",
      "a.myshopify.com.evil.com",
      "acme.okta.com.evil.com",
      "acme.my.salesforce.com.evil.com",
    ];
    for (const definition of Object.values(PROVIDERS)) {
      const beforePath = /^[^/?#]*(?:\/\/[^/?#]*)?/.exec(definition.tokenUrl ?? "")?.[0] ?? "";
      for (const [, name] of beforePath.matchAll(/\{([A-Za-z0-9_]+)\}/g)) {
        const rule = definition.placeholders[name ?? ""];
        expect(rule, `${definition.id} {${name}}`).toBeDefined();
        if (rule === undefined || "values" in rule) continue;
        for (const value of hostile) {
          expect(rule.pattern.test(value), `${definition.id} {${name}} = ${value}`).toBe(false);
        }
      }
    }
  });

  it("refuses an unknown provider and an empty client id", () => {
    const unknown = { ...generic, provider: "myspace" as ProviderId };
    expect(problemOf(() => buildRefreshRequest(unknown, grant))).toBe("unknown_provider");
    expect(problemOf(() => buildRefreshRequest({ ...generic, clientId: "" }, grant))).toBe(
      "missing_client_id",
    );
  });

  it("keeps secrets out of error messages", () => {
    try {
      buildRefreshRequest(
        { ...generic, tokenUrl: "http://user:hunter2@example.com/token" },
        { refreshToken: "rt-secret" },
      );
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ProviderConfigError);
      expect(String(error)).not.toMatch(/hunter2|rt-secret|secret"/);
    }
  });

  it("returns a fresh object on every call", () => {
    const first = buildRefreshRequest(generic, grant);
    first.headers.accept = "text/plain";
    expect(buildRefreshRequest(generic, grant).headers.accept).toBe("application/json");
  });
});

describe("connectionTokenHost", () => {
  const host = (provider: ProviderId, metadata: Record<string, unknown>, tokenUrl?: string) =>
    connectionTokenHost({ provider, tokenUrl: tokenUrl ?? null }, metadata);

  it("names the host a connection's metadata picks, where the provider picks hosts per connection", () => {
    expect(host("shopify", { shop: "acme.myshopify.com" })).toBe("acme.myshopify.com");
    expect(host("okta", { org: "acme.okta.com" })).toBe("acme.okta.com");
    expect(host("zoho", { location: "eu" })).toBe("accounts.zoho.eu");
    expect(host("zoho", {})).toBe("accounts.zoho.com");
  });

  it("is null where every connection shares one host, or the metadata names no valid one", () => {
    expect(host("google", { shop: "acme.myshopify.com" })).toBeNull();
    // Microsoft's tenant sits in the path: one host for every tenant.
    expect(host("microsoft", { tenant: "contoso.onmicrosoft.com" })).toBeNull();
    // An integration's own URL never has a placeholder in its host.
    expect(
      host("shopify", { shop: "acme.myshopify.com" }, "https://proxy.example.com/t"),
    ).toBeNull();
    for (const shop of ["evil.com", "ACME.myshopify.com", "acme.myshopify.com.", "", 42]) {
      expect(host("shopify", { shop })).toBeNull();
    }
  });
});
