import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, hashId } from "./logger";

const TOKEN = "ya29.a0-secret-access-token";
const REFRESH = "1//0g-secret-refresh-token";
const CLIENT_SECRET = "GOCSPX-client-secret";

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return {
    log: createLogger({ name: "test", level: "trace" }, stream),
    output: () => lines.join(""),
  };
}

describe("createLogger", () => {
  it("never writes a token or secret, wherever it sits in the log object", () => {
    const { log, output } = capture();
    log.info({ accessToken: TOKEN, refresh_token: REFRESH }, "top level");
    log.info({ connection: { accessToken: TOKEN, refreshToken: REFRESH } }, "one deep");
    log.info({ job: { tokens: { access_token: TOKEN, id_token: TOKEN } } }, "two deep");
    log.info(
      { integration: { clientSecret: CLIENT_SECRET, client_secret: CLIENT_SECRET } },
      "secret",
    );
    log.info({ req: { headers: { authorization: `Bearer ${TOKEN}` } } }, "request");
    const text = output();
    expect(text).toContain("two deep");
    expect(text).toContain("[redacted]");
    for (const secret of [TOKEN, REFRESH, CLIENT_SECRET]) expect(text).not.toContain(secret);
  });

  it("writes levels as words", () => {
    const { log, output } = capture();
    log.info("one");
    log.warn("two");
    log.fatal("three");
    const levels = output()
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as { level: unknown }).level);
    expect(levels).toEqual(["info", "warn", "fatal"]);
  });

  it("logs an HTTP client error without the request body or headers it carries", () => {
    const { log, output } = capture();
    const error = Object.assign(new Error("Request failed with status code 400"), {
      code: "ERR_BAD_REQUEST",
      config: {
        data: `grant_type=refresh_token&refresh_token=${REFRESH}`,
        headers: {
          Authorization: `Basic ${Buffer.from(`id:${CLIENT_SECRET}`).toString("base64")}`,
        },
      },
      response: { status: 400, data: { error: "invalid_grant", access_token: TOKEN } },
    });
    log.error({ err: error }, "refresh failed");
    const entry = JSON.parse(output()) as { err: Record<string, unknown> };
    expect(entry.err).toMatchObject({ type: "Error", code: "ERR_BAD_REQUEST", status: 400 });
    expect(entry.err).not.toHaveProperty("config");
    const text = output();
    expect(text).not.toContain(REFRESH);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(Buffer.from(`id:${CLIENT_SECRET}`).toString("base64"));
  });
});

describe("hashId", () => {
  const key = Buffer.alloc(32, 7);
  it("is stable, short and does not contain the id", () => {
    expect(hashId("alice@example.com", key)).toBe(hashId("alice@example.com", key));
    expect(hashId("alice@example.com", key)).not.toBe(hashId("bob@example.com", key));
    expect(hashId("alice@example.com", key)).toHaveLength(16);
    expect(hashId("alice@example.com", key)).not.toContain("alice");
  });

  it("cannot be recomputed without the key", () => {
    const unkeyed = createHash("sha256").update("alice@example.com").digest("base64url");
    expect(hashId("alice@example.com", key)).not.toBe(unkeyed.slice(0, 16));
    expect(hashId("alice@example.com", key)).not.toBe(
      hashId("alice@example.com", Buffer.alloc(32, 8)),
    );
  });
});
