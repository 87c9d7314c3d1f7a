import { describe, expect, it } from "vitest";
import { classifyAnswer } from "./classify-answer";
import type { ProviderAnswer } from "./types";

const now = new Date("2026-03-01T12:00:00.000Z");
const ACCESS = "ya29.a0AfB_secret-access-token-value";
const REFRESH = "1//0gSecretRefreshTokenValue";

function json(status: number, body: unknown, headers: ProviderAnswer["headers"] = {}) {
  return {
    status,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  };
}

describe("classifyAnswer: success", () => {
  it("maps a full token response", () => {
    const result = classifyAnswer(
      "oauth2",
      json(200, {
        access_token: ACCESS,
        refresh_token: REFRESH,
        token_type: "bearer",
        expires_in: 3599,
        scope: "read write",
      }),
      now,
    );
    expect(result).toEqual({
      outcome: "success",
      accessToken: ACCESS,
      refreshToken: REFRESH,
      tokenType: "bearer",
      expiresAt: new Date("2026-03-01T12:59:59.000Z"),
      scope: "read write",
      refreshTokenExpiresAt: null,
    });
  });

  it("keeps the old refresh token when none or an empty one is sent, and defaults Bearer", () => {
    for (const extra of [{}, { refresh_token: "" }, { refresh_token: null }]) {
      const result = classifyAnswer("oauth2", json(200, { access_token: ACCESS, ...extra }), now);
      expect(result).toMatchObject({ outcome: "success", refreshToken: null, tokenType: "Bearer" });
    }
  });

  it("reads a refresh token's stated lifetime, as GitHub and Intuit state it, within bounds", () => {
    const refreshTokenExpiry = (extra: Record<string, unknown>) => {
      const result = classifyAnswer("oauth2", json(200, { access_token: ACCESS, ...extra }), now);
      return result.outcome === "success" ? result.refreshTokenExpiresAt : undefined;
    };
    expect(refreshTokenExpiry({ refresh_token_expires_in: 15811200 })).toEqual(
      new Date(now.getTime() + 15_811_200_000),
    );
    expect(refreshTokenExpiry({ x_refresh_token_expires_in: "8726400" })).toEqual(
      new Date(now.getTime() + 8_726_400_000),
    );
    expect(refreshTokenExpiry({ refresh_token_expires_in: 1e300 })).toEqual(
      new Date(now.getTime() + 10 * 365 * 24 * 3600 * 1000),
    );
    for (const stated of [0, -5, "soon", null]) {
      expect(refreshTokenExpiry({ refresh_token_expires_in: stated })).toBeNull();
    }
  });

  it("reads expires_in as a numeric string and expires_at as epoch seconds", () => {
    const asString = classifyAnswer(
      "oauth2",
      json(200, { access_token: ACCESS, expires_in: "60" }),
      now,
    );
    expect(asString).toMatchObject({ expiresAt: new Date("2026-03-01T12:01:00.000Z") });
    const epoch = Date.parse("2026-03-01T18:00:00.000Z") / 1000;
    const asEpoch = classifyAnswer(
      "oauth2",
      json(200, { access_token: ACCESS, expires_at: epoch }),
      now,
    );
    expect(asEpoch).toMatchObject({ expiresAt: new Date("2026-03-01T18:00:00.000Z") });
  });

  it("bounds what it stores: absurd lifetimes, control characters, oversized fields", () => {
    const result = classifyAnswer(
      "oauth2",
      json(200, {
        access_token: ACCESS,
        expires_in: 1e300,
        token_type: "Bearer\u0000",
        scope: `read\u0000write ${"x".repeat(5000)}`,
      }),
      now,
    );
    if (result.outcome !== "success") throw new Error(result.outcome);
    expect(result.expiresAt?.toISOString()).toBe("2036-02-27T12:00:00.000Z");
    expect(result.tokenType).toBe("Bearer");
    expect(result.scope?.startsWith("read write x")).toBe(true);
    expect(result.scope).toHaveLength(4096);
    const farEpoch = classifyAnswer(
      "oauth2",
      json(200, { access_token: ACCESS, expires_at: 9e15 }),
      now,
    );
    expect(farEpoch).toMatchObject({ expiresAt: new Date("2036-02-27T12:00:00.000Z") });
    const blank = classifyAnswer(
      "oauth2",
      json(200, { access_token: ACCESS, token_type: "\u0007" }),
      now,
    );
    expect(blank).toMatchObject({ tokenType: "Bearer" });
  });

  it("falls back to the definition's lifetime, or null when the provider's tokens do not expire", () => {
    const generic = classifyAnswer("oauth2", json(200, { access_token: ACCESS }), now);
    expect(generic).toMatchObject({ expiresAt: new Date("2026-03-01T13:00:00.000Z") });
    const zero = classifyAnswer("oauth2", json(200, { access_token: ACCESS, expires_in: 0 }), now);
    expect(zero).toMatchObject({ expiresAt: new Date("2026-03-01T13:00:00.000Z") });
    const github = classifyAnswer("github", json(200, { access_token: ACCESS }), now);
    expect(github).toMatchObject({ outcome: "success", expiresAt: null });
  });

  it("accepts a form-encoded body and a scope array", () => {
    const form = classifyAnswer(
      "oauth2",
      { status: 200, headers: {}, body: `access_token=${ACCESS}&expires_in=120&scope=a%20b` },
      now,
    );
    expect(form).toMatchObject({
      outcome: "success",
      accessToken: ACCESS,
      expiresAt: new Date("2026-03-01T12:02:00.000Z"),
      scope: "a b",
    });
    const array = classifyAnswer(
      "oauth2",
      json(200, { access_token: ACCESS, scope: ["x", "y"] }),
      now,
    );
    expect(array).toMatchObject({ scope: "x y" });
  });

  it("reports a malformed 2xx answer as unknown without echoing it", () => {
    const bodies = [
      "<html>Bad gateway</html>",
      "",
      "[]",
      "{not json",
      JSON.stringify({ token_type: "Bearer", secret: REFRESH }),
      JSON.stringify({ access_token: "" }),
      JSON.stringify({ access_token: 42 }),
    ];
    for (const body of bodies) {
      const result = classifyAnswer("oauth2", { status: 200, headers: {}, body }, now);
      expect(result).toMatchObject({ outcome: "unknown", errorCode: "malformed_response" });
      expect(JSON.stringify(result)).not.toContain(REFRESH);
    }
  });
});

describe("classifyAnswer: errors", () => {
  it("maps invalid_grant to invalid_grant", () => {
    const result = classifyAnswer(
      "oauth2",
      json(400, {
        error: "invalid_grant",
        error_description: "Token has been expired or revoked.",
      }),
      now,
    );
    expect(result).toEqual({
      outcome: "invalid_grant",
      errorCode: "invalid_grant",
      message: "Token has been expired or revoked.",
    });
  });

  it("maps invalid_client and unauthorized_client to invalid_client", () => {
    expect(classifyAnswer("oauth2", json(401, { error: "invalid_client" }), now)).toEqual({
      outcome: "invalid_client",
      errorCode: "invalid_client",
      message: "provider rejected the client credentials",
    });
    expect(
      classifyAnswer("oauth2", json(400, { error: "unauthorized_client" }), now),
    ).toMatchObject({ outcome: "invalid_client", errorCode: "unauthorized_client" });
  });

  it("treats an error field in a 200 body as an error, for every provider", () => {
    const result = classifyAnswer(
      "google",
      json(200, { error: "invalid_grant", access_token: ACCESS }),
      now,
    );
    expect(result).toMatchObject({ outcome: "invalid_grant", errorCode: "invalid_grant" });
  });

  it("maps 429 to rate_limited with Retry-After seconds, an HTTP-date, or a JSON retry_after", () => {
    expect(classifyAnswer("oauth2", json(429, {}, { "Retry-After": "7" }), now)).toEqual({
      outcome: "rate_limited",
      errorCode: "http_429",
      message: "provider is rate limiting requests (HTTP 429)",
      retryAfterMs: 7000,
    });
    const date = json(429, {}, { "retry-after": ["Sun, 01 Mar 2026 12:00:05 GMT"] });
    expect(classifyAnswer("oauth2", date, now)).toMatchObject({ retryAfterMs: 5000 });
    const discord = json(429, { message: "You are being rate limited.", retry_after: 1.25 });
    expect(classifyAnswer("discord", discord, now)).toMatchObject({ retryAfterMs: 1250 });
    const none = { status: 429, headers: {}, body: "Too Many Requests" };
    expect(classifyAnswer("oauth2", none, now)).toMatchObject({
      outcome: "rate_limited",
      retryAfterMs: null,
    });
  });

  it("caps Retry-After at one hour", () => {
    const result = classifyAnswer("oauth2", json(429, {}, { "retry-after": "86400" }), now);
    expect(result).toMatchObject({ retryAfterMs: 3_600_000 });
  });

  it("maps 5xx and 408 to transient, whatever the body says", () => {
    for (const status of [500, 502, 503, 504, 408]) {
      const result = classifyAnswer(
        "oauth2",
        { status, headers: {}, body: "<html>oops</html>" },
        now,
      );
      expect(result).toEqual({
        outcome: "transient",
        errorCode: `http_${status}`,
        message: `provider answered HTTP ${status}`,
      });
    }
    expect(classifyAnswer("oauth2", json(503, { error: "invalid_grant" }), now)).toMatchObject({
      outcome: "transient",
    });
  });

  it("keeps a 5xx's Retry-After, in seconds or as an HTTP-date, capped at one hour", () => {
    const at = (headers: Record<string, string>) =>
      classifyAnswer("oauth2", { status: 503, headers, body: "" }, now);
    expect(at({ "Retry-After": "120" })).toMatchObject({
      outcome: "transient",
      retryAfterMs: 120_000,
    });
    expect(at({ "retry-after": new Date(now.getTime() + 30_000).toUTCString() })).toMatchObject({
      retryAfterMs: 30_000,
    });
    expect(at({ "retry-after": "86400" })).toMatchObject({ retryAfterMs: 3_600_000 });
    expect(at({ "retry-after": "soon" })).not.toHaveProperty("retryAfterMs");
  });

  it("maps temporarily_unavailable and server_error bodies to transient", () => {
    for (const error of ["temporarily_unavailable", "server_error"]) {
      expect(classifyAnswer("oauth2", json(400, { error }), now)).toMatchObject({
        outcome: "transient",
        errorCode: error,
      });
    }
  });

  it("maps other errors to unknown with the body's code or http_<status>", () => {
    for (const error of ["invalid_request", "invalid_scope", "unsupported_grant_type"]) {
      expect(classifyAnswer("oauth2", json(400, { error }), now)).toEqual({
        outcome: "unknown",
        errorCode: error,
        message: "provider answered HTTP 400 without a known error",
      });
    }
    expect(classifyAnswer("oauth2", { status: 403, headers: {}, body: "Forbidden" }, now)).toEqual({
      outcome: "unknown",
      errorCode: "http_403",
      message: "provider answered HTTP 403 without a known error",
    });
    expect(classifyAnswer("oauth2", { status: 302, headers: {}, body: "" }, now)).toMatchObject({
      outcome: "unknown",
      errorCode: "http_302",
    });
  });

  it("does not let error codes reach Object.prototype", () => {
    expect(classifyAnswer("github", json(400, { error: "constructor" }), now)).toMatchObject({
      outcome: "unknown",
      errorCode: "constructor",
    });
  });

  it("sanitizes the error code and truncates the message", () => {
    const result = classifyAnswer(
      "oauth2",
      json(400, {
        error: `bad code <script>${"x".repeat(100)}`,
        error_description: "d".repeat(500),
      }),
      now,
    );
    if (result.outcome === "success") throw new Error("expected an error");
    expect(result.errorCode).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
    expect(result.errorCode.startsWith("bad_code_script")).toBe(true);
    expect(result.message.length).toBeLessThanOrEqual(200);
    const empty = classifyAnswer("oauth2", json(400, { error: "<>" }), now);
    expect(empty).toMatchObject({ errorCode: "http_400" });
  });

  it("never repeats a secret the request carried, whole or URL-encoded, in a code or message", () => {
    const secret = "cs_Sh0rt/Secret";
    const echoes = [
      json(400, { error: `x_${REFRESH}`, error_description: `bad token ${REFRESH}` }),
      json(401, { error: "invalid_client", error_description: `secret ${secret} refused` }),
      json(503, { error: REFRESH, error_description: encodeURIComponent(REFRESH) }),
      json(429, { error: "slow_down", error_description: `for ${REFRESH}` }),
      json(200, { error: `e_${encodeURIComponent(secret)}`, error_description: REFRESH }),
    ];
    for (const answer of echoes) {
      const result = classifyAnswer("oauth2", answer, now, { secrets: () => [REFRESH, secret] });
      if (result.outcome === "success") throw new Error("expected an error");
      const said = `${result.errorCode} ${result.message}`;
      for (const part of [REFRESH, "0gSecretRefresh", secret, "Sh0rtSecret", "Sh0rt%2FSecret"]) {
        expect(said).not.toContain(part);
      }
    }
  });

  it("never puts a token echoed in the description into the message", () => {
    const longToken =
      "ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246c34E1ccbF66C46812d16D5B1A9Dc86A1498";
    const result = classifyAnswer(
      "oauth2",
      json(400, {
        error: "invalid_request",
        error_description: `refresh token ${longToken} is malformed\n\u0000`,
      }),
      now,
    );
    expect(result).toMatchObject({ message: "refresh token [redacted] is malformed" });
  });
});
