import { generateEncryptionKey } from "@evergreen/crypto";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { shortApiKeyWarnings } from "./api-keys";
import { describeConfig } from "./describe-config";
import * as fields from "./fields";
import { ConfigError, parseEnv } from "./parse-env";

const schema = z.object({
  NODE_ENV: fields.nodeEnv,
  DATABASE_URL: fields.databaseUrl,
  REDIS_URL: fields.redisUrl,
  REDIS_CLUSTER_NODES: fields.redisClusterNodes,
  REFRESH_QUEUE_SHARDS: fields.refreshQueueShards,
  ENCRYPTION_KEYS: fields.encryptionKeys,
  API_KEYS: fields.apiKeys,
  PORT: fields.apiPort,
  WORKER_CONCURRENCY: fields.workerConcurrency,
  REFRESH_TIMEOUT_MS: fields.refreshTimeoutMs,
  ALLOW_INSECURE_TOKEN_URLS: fields.allowInsecureTokenUrls,
  EGRESS_ALLOWLIST: fields.egressAllowlist,
  EVENT_RETENTION_DAYS: fields.eventRetentionDays,
  LOG_LEVEL: fields.logLevel,
});

const valid = {
  ENCRYPTION_KEYS: generateEncryptionKey("k1"),
  API_KEYS: "a-long-enough-api-key",
};

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    parseEnv(schema, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("parseEnv", () => {
  it("applies SPEC defaults", () => {
    const config = parseEnv(schema, valid);
    expect(config).toMatchObject({
      NODE_ENV: "development",
      DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/evergreen",
      REDIS_URL: "redis://127.0.0.1:6379",
      PORT: 3000,
      WORKER_CONCURRENCY: 50,
      ALLOW_INSECURE_TOKEN_URLS: false,
      LOG_LEVEL: "info",
      API_KEYS: [
        {
          name: "key1",
          key: "a-long-enough-api-key",
          scopes: ["tokens:read", "connections:write", "admin"],
        },
      ],
    });
    expect(config.ENCRYPTION_KEYS.map((key) => key.id)).toEqual(["k1"]);
  });

  it("treats an empty variable as unset", () => {
    expect(parseEnv(schema, { ...valid, PORT: "", LOG_LEVEL: " " }).PORT).toBe(3000);
  });

  it("takes AUDIT_LOG's stdout in any case, where STDOUT made a file of that name", () => {
    const audit = z.object({ AUDIT_LOG: fields.auditLog });
    expect(parseEnv(audit, {}).AUDIT_LOG).toBe("stdout");
    expect(parseEnv(audit, { AUDIT_LOG: " STDOUT " }).AUDIT_LOG).toBe("stdout");
    expect(parseEnv(audit, { AUDIT_LOG: "/var/log/Stdout" }).AUDIT_LOG).toBe("/var/log/Stdout");
  });

  it("parses booleans strictly: 'false' is false", () => {
    expect(
      parseEnv(schema, { ...valid, ALLOW_INSECURE_TOKEN_URLS: "false" }).ALLOW_INSECURE_TOKEN_URLS,
    ).toBe(false);
    expect(
      parseEnv(schema, { ...valid, ALLOW_INSECURE_TOKEN_URLS: "true" }).ALLOW_INSECURE_TOKEN_URLS,
    ).toBe(true);
  });

  it("reports every problem at once, each named by its variable", () => {
    const problems = problemsOf({
      DATABASE_URL: "mysql://localhost/db",
      REDIS_URL: "localhost:6379",
      ENCRYPTION_KEYS: "k1:dG9vIHNob3J0",
      API_KEYS: "app::admin",
      PORT: "seventy",
      WORKER_CONCURRENCY: "0",
      ALLOW_INSECURE_TOKEN_URLS: "yes",
      LOG_LEVEL: "loud",
      NODE_ENV: "staging",
    });
    const named = problems.map((problem) => problem.split(":")[0]);
    expect(named.sort()).toEqual(
      [
        "ALLOW_INSECURE_TOKEN_URLS",
        "API_KEYS",
        "DATABASE_URL",
        "ENCRYPTION_KEYS",
        "LOG_LEVEL",
        "NODE_ENV",
        "PORT",
        "REDIS_URL",
        "WORKER_CONCURRENCY",
      ].sort(),
    );
    expect(problems.find((p) => p.startsWith("ENCRYPTION_KEYS"))).toMatch(/32 bytes/);
  });

  it("bounds EVENT_RETENTION_DAYS to what PostgreSQL can subtract from now", () => {
    expect(parseEnv(schema, { ...valid, EVENT_RETENTION_DAYS: "36500" }).EVENT_RETENTION_DAYS).toBe(
      36_500,
    );
    expect(problemsOf({ ...valid, EVENT_RETENTION_DAYS: "9999999" })).toHaveLength(1);
  });

  it("parses EVENT_RETENTION_DAYS like every whole number, showing a bad value", () => {
    expect(problemsOf({ ...valid, EVENT_RETENTION_DAYS: "abc" })).toEqual([
      'EVENT_RETENTION_DAYS: must be a number of days (1-36500), got "abc"',
    ]);
    expect(problemsOf({ ...valid, EVENT_RETENTION_DAYS: "1e3" })).toHaveLength(1);
  });

  it("refuses a connection URL its client cannot parse, without showing it", () => {
    const problems = problemsOf({
      ...valid,
      DATABASE_URL: "postgresql://app:db-secret@db:notaport/evergreen",
      REDIS_URL: "redis://:redis-secret@redis:notaport",
    });
    expect(problems).toEqual([
      "DATABASE_URL: must be a valid postgresql:// URL",
      "REDIS_URL: must be a valid redis:// or rediss:// URL",
    ]);
  });

  it("reads REDIS_CLUSTER_NODES as seed nodes, unset or blank as a single Redis", () => {
    expect(parseEnv(schema, valid).REDIS_CLUSTER_NODES).toBeUndefined();
    expect(parseEnv(schema, { ...valid, REDIS_CLUSTER_NODES: " " }).REDIS_CLUSTER_NODES).toBe(
      undefined,
    );
    expect(
      parseEnv(schema, { ...valid, REDIS_CLUSTER_NODES: "10.0.0.1:7000, redis-b:7001,[::1]:7002" })
        .REDIS_CLUSTER_NODES,
    ).toEqual([
      { host: "10.0.0.1", port: 7000 },
      { host: "redis-b", port: 7001 },
      { host: "::1", port: 7002 },
    ]);
  });

  it("names each bad REDIS_CLUSTER_NODES entry", () => {
    expect(
      problemsOf({ ...valid, REDIS_CLUSTER_NODES: "redis-a:7000,redis-b,redis-c:70000,:7003" }),
    ).toEqual([
      'REDIS_CLUSTER_NODES: must be a comma list of host:port, got "redis-b"',
      'REDIS_CLUSTER_NODES: must be a comma list of host:port, got "redis-c:70000"',
      'REDIS_CLUSTER_NODES: must be a comma list of host:port, got ":7003"',
    ]);
  });

  it("bounds REFRESH_QUEUE_SHARDS to 1-256, default 1", () => {
    expect(parseEnv(schema, valid).REFRESH_QUEUE_SHARDS).toBe(1);
    expect(parseEnv(schema, { ...valid, REFRESH_QUEUE_SHARDS: "12" }).REFRESH_QUEUE_SHARDS).toBe(
      12,
    );
    expect(problemsOf({ ...valid, REFRESH_QUEUE_SHARDS: "0" })).toEqual([
      'REFRESH_QUEUE_SHARDS: must be a number of shards (1-256), got "0"',
    ]);
    expect(problemsOf({ ...valid, REFRESH_QUEUE_SHARDS: "257" })).toHaveLength(1);
  });

  it("parses EGRESS_ALLOWLIST into entries, and names a bad entry", () => {
    expect(parseEnv(schema, valid).EGRESS_ALLOWLIST).toEqual([]);
    expect(
      parseEnv(schema, { ...valid, EGRESS_ALLOWLIST: "idp.internal:8443, 10.0.0.0/8" })
        .EGRESS_ALLOWLIST,
    ).toEqual([
      { kind: "host", host: "idp.internal", port: 8443 },
      { kind: "network", address: "10.0.0.0", prefix: 8, family: 4, port: null },
    ]);
    expect(problemsOf({ ...valid, EGRESS_ALLOWLIST: "idp.internal, 10.0.0.0/40" })).toEqual([
      'EGRESS_ALLOWLIST: entry "10.0.0.0/40": the prefix length must be 0 to 32',
    ]);
    expect(
      problemsOf({ ...valid, EGRESS_ALLOWLIST: "10.0.0.0/99,https://idp,::1/200" }),
    ).toHaveLength(3);
  });

  it("names every bad ENCRYPTION_KEYS entry, not only the first", () => {
    const good = generateEncryptionKey("k2");
    expect(
      problemsOf({ ...valid, ENCRYPTION_KEYS: `k1:dG9vIHNob3J0,${good},bad key,${good}` }),
    ).toEqual([
      'ENCRYPTION_KEYS: key "k1": must be base64 of exactly 32 bytes',
      "ENCRYPTION_KEYS: key #3: expected keyId:base64, keyId of 1-32 [A-Za-z0-9_-]",
      'ENCRYPTION_KEYS: key #4: duplicate key id "k2"',
    ]);
  });

  it("says what is wrong with a numeric value, showing it", () => {
    expect(
      problemsOf({ ...valid, WORKER_CONCURRENCY: "abc", PORT: "seventy", REFRESH_TIMEOUT_MS: "0" }),
    ).toEqual([
      'PORT: must be a port number (0-65535), got "seventy"',
      'WORKER_CONCURRENCY: must be a number of jobs (1-10000), got "abc"',
      'REFRESH_TIMEOUT_MS: must be a number of milliseconds (1-600000), got "0"',
    ]);
  });

  it.each(["1.5", "-3", "1e3", "0x10", "12abc", "99999999999999999999"])(
    "refuses %j as a whole number",
    (raw) => {
      expect(problemsOf({ ...valid, WORKER_CONCURRENCY: raw })).toEqual([
        `WORKER_CONCURRENCY: must be a number of jobs (1-10000), got ${JSON.stringify(raw)}`,
      ]);
    },
  );

  it("accepts whole numbers with surrounding spaces, and port 0", () => {
    expect(parseEnv(schema, { ...valid, WORKER_CONCURRENCY: " 7 ", PORT: "0" })).toMatchObject({
      WORKER_CONCURRENCY: 7,
      PORT: 0,
    });
  });

  it("names a missing required secret", () => {
    expect(problemsOf({})).toEqual(["ENCRYPTION_KEYS: is required", "API_KEYS: is required"]);
  });

  it("never echoes a secret in a problem", () => {
    const badKey = `k1:${Buffer.alloc(31, 7).toString("base64")}`;
    const problems = problemsOf({ ...valid, ENCRYPTION_KEYS: badKey });
    expect(problems.join("\n")).not.toContain(badKey.slice(3));
  });
});

describe("API_KEYS", () => {
  const reader = "reader-key-0123456789";
  const writer = "writer-key-0123456789";
  const keysOf = (spec: string) => parseEnv(schema, { ...valid, API_KEYS: spec }).API_KEYS;

  it("reads bare keys (every scope, named by position) and name:key:scopes entries", () => {
    expect(
      keysOf(
        ` bare-key-0123456789 , app:${reader}:tokens:read, ops:${writer}:connections:write+tokens:read,other-bare-key-0123`,
      ),
    ).toEqual([
      {
        name: "key1",
        key: "bare-key-0123456789",
        scopes: ["tokens:read", "connections:write", "admin"],
      },
      { name: "app", key: reader, scopes: ["tokens:read"] },
      { name: "ops", key: writer, scopes: ["connections:write", "tokens:read"] },
      {
        name: "key4",
        key: "other-bare-key-0123",
        scopes: ["tokens:read", "connections:write", "admin"],
      },
    ]);
  });

  it("reports each bad entry by its position, one line per problem, never showing a key", () => {
    const problems = problemsOf({
      ...valid,
      API_KEYS: [
        `app:${reader}:tokens:write`,
        `:${writer}:admin`,
        "ci:short:admin",
        `app:third-key-0123456789:tokens:read`,
        `twin:${reader}:admin`,
        "a-bare-key-too-short".slice(0, 10),
        `key2:another-key-0123456789:admin`,
        `nameonly:${"k".repeat(20)}:`,
        `swapped:tokens:read:${"Zq9".repeat(6)}`,
        `no-scopes-${"x".repeat(20)}:at-all`,
      ].join(","),
    });
    expect(problems).toEqual([
      'API_KEYS: entry 1: unknown scope "tokens:write" (known: tokens:read, connections:write, admin)',
      "API_KEYS: entry 2: the name is empty",
      "API_KEYS: entry 4: the same name as entry 1",
      "API_KEYS: entry 5: the same key as entry 1",
      "API_KEYS: entry 7: names key1, key2, ... are kept for bare keys",
      "API_KEYS: entry 8: no scopes: give one or more of tokens:read, connections:write, admin",
      "API_KEYS: entry 9: unknown scope (known: tokens:read, connections:write, admin)",
      "API_KEYS: entry 10: must be a bare key or name:key:scope+scope",
    ]);
    const text = problems.join("\n");
    for (const secret of [reader, writer, "Zq9Zq9", "x".repeat(20)]) {
      expect(text).not.toContain(secret);
    }
  });

  it("never shows the part of a key with colons that lands in the scopes field", () => {
    // A bare key holding colons reads as name:key:scopes; its tail must not be echoed.
    const problems = problemsOf({ ...valid, API_KEYS: "abcdefgh:ijklmnop:qrstuvwxyz" });
    expect(problems).toContain(
      "API_KEYS: entry 1: unknown scope (known: tokens:read, connections:write, admin)",
    );
    expect(problems.join("\n")).not.toContain("qrstuvwxyz");
  });

  it("takes short keys with a warning naming each, never showing it, and refuses an empty one", () => {
    const keys = keysOf(`test-key,reader:k1:tokens:read,app:${reader}:admin`);
    expect(keys.map(({ name }) => name)).toEqual(["key1", "reader", "app"]);
    const warnings = shortApiKeyWarnings(keys);
    expect(warnings).toEqual([
      expect.stringMatching(/^API_KEYS: the key named key1 has fewer than 16 characters/),
      expect.stringMatching(/^API_KEYS: the key named reader has fewer than 16 characters/),
    ]);
    expect(warnings.join("\n")).not.toMatch(/test-key|k1\b/);
    expect(problemsOf({ ...valid, API_KEYS: "app::admin" })).toEqual([
      "API_KEYS: entry 1: the key is empty",
    ]);
    expect(problemsOf({ ...valid, API_KEYS: "app: :admin,two words" })).toEqual([
      "API_KEYS: entry 1: the key holds whitespace",
      "API_KEYS: entry 2: the key holds whitespace",
    ]);
  });

  it("needs at least one key", () => {
    expect(problemsOf({ ...valid, API_KEYS: " , " })).toEqual(["API_KEYS: needs at least one key"]);
  });

  it("is described by names and scopes, never by a key", () => {
    const config = parseEnv(schema, { ...valid, API_KEYS: `${writer},app:${reader}:tokens:read` });
    const described = describeConfig(config);
    expect(described.API_KEYS).toEqual([
      "key1:tokens:read+connections:write+admin",
      "app:tokens:read",
    ]);
    const text = JSON.stringify(described);
    for (const secret of [reader, writer]) expect(text).not.toContain(secret);
  });
});
