import { ConfigError, parseEnv } from "@evergreen/config";
import { generateEncryptionKey } from "@evergreen/crypto";
import { describe, expect, it } from "vitest";
import { apiEnv, publicUrl } from "./env";

const valid = { ENCRYPTION_KEYS: generateEncryptionKey("k1"), API_KEYS: "a-long-enough-api-key" };

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    parseEnv(apiEnv, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("PUBLIC_URL", () => {
  it("defaults to the api's loopback address on PORT, and drops a trailing slash", () => {
    expect(publicUrl(parseEnv(apiEnv, { ...valid, PORT: "3100" }))).toBe("http://127.0.0.1:3100");
    const behindProxy = parseEnv(apiEnv, {
      ...valid,
      PUBLIC_URL: "https://Evergreen.Example.com/api/",
    });
    expect(publicUrl(behindProxy)).toBe("https://evergreen.example.com/api");
  });

  it("refuses what cannot be followed by /oauth/callback, showing the value unless it holds credentials", () => {
    for (const value of [
      "evergreen.example.com",
      "ftp://evergreen.example.com",
      "https://evergreen.example.com/?x=1",
      "https://evergreen.example.com/#top",
    ]) {
      expect(problemsOf({ ...valid, PUBLIC_URL: value }), value).toEqual([
        `PUBLIC_URL: must be an http(s) URL without credentials, query or fragment, got ${JSON.stringify(value)}`,
      ]);
    }
    // Credentials are not repeated into the log.
    for (const value of ["https://user:pw@evergreen.example.com", "https://user:pw@host:99999/"]) {
      expect(problemsOf({ ...valid, PUBLIC_URL: value }), value).toEqual([
        "PUBLIC_URL: must be an http(s) URL without credentials, query or fragment, got one with credentials",
      ]);
    }
  });

  it("must use https in production, unless it is loopback", () => {
    const production = { ...valid, NODE_ENV: "production" };
    expect(problemsOf({ ...production, PUBLIC_URL: "http://evergreen.example.com" })).toEqual([
      "PUBLIC_URL: must use https in production (authorization codes come back through it)",
    ]);
    // Alongside another problem too, not only once that one is fixed.
    expect(
      problemsOf({ ...production, PUBLIC_URL: "http://evergreen.example.com", PORT: "abc" }),
    ).toEqual([
      'PORT: must be a port number (0-65535), got "abc"',
      "PUBLIC_URL: must use https in production (authorization codes come back through it)",
    ]);
    expect(parseEnv(apiEnv, { ...production, PUBLIC_URL: "http://127.0.0.1:3000" })).toBeTruthy();
    expect(publicUrl(parseEnv(apiEnv, production))).toBe("http://127.0.0.1:3000");
  });
});

describe("API_KEYS", () => {
  it("takes a key under 16 characters outside production, and refuses it in production", () => {
    expect(parseEnv(apiEnv, { ...valid, API_KEYS: "test-key" }).API_KEYS).toHaveLength(1);
    const problems = problemsOf({ ...valid, NODE_ENV: "production", API_KEYS: "test-key" });
    expect(problems).toEqual([
      "API_KEYS: keys under 16 characters are refused in production; use long random ones (openssl rand -hex 24 makes one)",
    ]);
    expect(problems.join("\n")).not.toContain("test-key");
  });
});

describe("AUDIT_LOG", () => {
  it("defaults to stdout, also when blank, and takes a path", () => {
    expect(parseEnv(apiEnv, valid).AUDIT_LOG).toBe("stdout");
    expect(parseEnv(apiEnv, { ...valid, AUDIT_LOG: " " }).AUDIT_LOG).toBe("stdout");
    const path = "/var/log/evergreen/audit.log";
    expect(parseEnv(apiEnv, { ...valid, AUDIT_LOG: ` ${path} ` }).AUDIT_LOG).toBe(path);
  });
});

describe("durations", () => {
  it("refuses values Node's timers cannot hold, naming the range", () => {
    expect(
      problemsOf({
        ...valid,
        REFRESH_TIMEOUT_MS: "99999999999",
        RETRY_MAX_DELAY_MS: "9999999999",
      }),
    ).toEqual([
      'REFRESH_TIMEOUT_MS: must be a number of milliseconds (1-600000), got "99999999999"',
      'RETRY_MAX_DELAY_MS: must be a number of milliseconds (1-86400000), got "9999999999"',
    ]);
  });

  it("refuses a base retry delay above the maximum", () => {
    expect(
      problemsOf({ ...valid, RETRY_BASE_DELAY_MS: "500000", RETRY_MAX_DELAY_MS: "1000" }),
    ).toEqual(["RETRY_BASE_DELAY_MS: must not exceed RETRY_MAX_DELAY_MS (500000 > 1000)"]);
  });

  it("reports their order alongside other problems, not once those are fixed", () => {
    expect(
      problemsOf({
        ...valid,
        PORT: "abc",
        RETRY_BASE_DELAY_MS: "5000",
        RETRY_MAX_DELAY_MS: "1000",
      }),
    ).toEqual([
      'PORT: must be a port number (0-65535), got "abc"',
      "RETRY_BASE_DELAY_MS: must not exceed RETRY_MAX_DELAY_MS (5000 > 1000)",
    ]);
  });
});
