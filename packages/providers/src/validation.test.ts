import { describe, expect, it } from "vitest";
import { buildValidationRequest, classifyValidation } from "./validation";

const now = new Date("2026-01-01T00:00:00Z");
const answer = (status: number, body: unknown = {}) => ({
  status,
  headers: {},
  body: JSON.stringify(body),
});
const settings = { clientId: "id:1", clientSecret: "s%2" };

describe("buildValidationRequest", () => {
  it("sends Google's token in a form body, never in the URL", () => {
    const built = buildValidationRequest({ ...settings, provider: "google" }, "at-1", {});
    expect(built?.kind).toBe("tokeninfo");
    expect(built?.request.url).toBe("https://oauth2.googleapis.com/tokeninfo");
    expect(built?.request.body).toBe("access_token=at-1");
  });

  it("checks a GitHub token with Basic client auth, the client id in the path", () => {
    const built = buildValidationRequest({ ...settings, provider: "github" }, "gho_1", {});
    expect(built?.request.url).toBe("https://api.github.com/applications/id%3A1/token");
    expect(built?.request.headers.authorization).toBe(
      `Basic ${Buffer.from("id%3A1:s%252").toString("base64")}`,
    );
    expect(JSON.parse(built?.request.body ?? "")).toEqual({ access_token: "gho_1" });
  });

  it("calls an identity endpoint with the token as Bearer, on the region's host", () => {
    const built = buildValidationRequest({ ...settings, provider: "amazon" }, "Atza", {
      region: "eu",
    });
    expect(built?.request).toMatchObject({
      url: "https://api.amazon.co.uk/user/profile",
      method: "GET",
      headers: { authorization: "Bearer Atza" },
    });
  });

  it("sends Dropbox's identity call as a POST and Notion's with its API version", () => {
    const dropbox = buildValidationRequest({ ...settings, provider: "dropbox" }, "sl.1", {});
    expect(dropbox?.request).toMatchObject({
      url: "https://api.dropboxapi.com/2/users/get_current_account",
      method: "POST",
      headers: { authorization: "Bearer sl.1" },
    });
    expect(dropbox?.request.body).toBeUndefined();
    const notion = buildValidationRequest({ ...settings, provider: "notion" }, "ntn_1", {});
    expect(notion?.request).toMatchObject({
      method: "GET",
      headers: { authorization: "Bearer ntn_1", "notion-version": "2022-06-28" },
    });
  });

  it("prefers the integration's introspection URL, which must be https", () => {
    const built = buildValidationRequest(
      { ...settings, provider: "oauth2", introspectionUrl: "https://idp.example/introspect" },
      "at",
      {},
    );
    expect(built?.kind).toBe("introspection");
    expect(built?.request.body).toBe("token=at&token_type_hint=access_token");
    expect(() =>
      buildValidationRequest(
        { ...settings, provider: "oauth2", introspectionUrl: "http://idp.example/i" },
        "at",
        {},
      ),
    ).toThrow(/https/);
  });

  it("is null where there is no way to validate", () => {
    expect(buildValidationRequest({ ...settings, provider: "oauth2" }, "at", {})).toBeNull();
  });
});

describe("classifyValidation", () => {
  it("reads Google's scope and seconds left", () => {
    expect(
      classifyValidation("tokeninfo", answer(200, { scope: "email", expires_in: "120" }), now),
    ).toEqual({ valid: true, scope: "email", expiresAt: new Date(now.getTime() + 120_000) });
    expect(classifyValidation("tokeninfo", answer(400, { error: "invalid_token" }), now)).toEqual({
      valid: false,
    });
  });

  it("reads each provider's word for a dead token", () => {
    expect(classifyValidation("check_token", answer(404), now)).toEqual({ valid: false });
    expect(classifyValidation("identity", answer(401), now)).toEqual({ valid: false });
    expect(classifyValidation("introspection", answer(200, { active: false }), now)).toEqual({
      valid: false,
    });
  });

  it("reads RFC 7662 and GitHub's scopes", () => {
    expect(
      classifyValidation("introspection", answer(200, { active: true, scope: "a b", exp: 1 }), now),
    ).toEqual({ valid: true, scope: "a b", expiresAt: new Date(1000) });
    expect(
      classifyValidation("check_token", answer(200, { scopes: ["repo", "user"] }), now),
    ).toEqual({ valid: true, scope: "repo user", expiresAt: null });
  });

  it("gives no verdict on an outage, a rate limit or a shapeless answer", () => {
    expect(classifyValidation("identity", answer(503), now).valid).toBeNull();
    expect(classifyValidation("check_token", answer(429), now).valid).toBeNull();
    expect(classifyValidation("introspection", answer(200, { ok: 1 }), now).valid).toBeNull();
  });
});
