import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseEncryptionKeys } from "@evergreen/crypto";
import { describe, expect, it } from "vitest";
import { readDevSecrets, withDevSecrets } from "./dev-secrets";

const both = ["ENCRYPTION_KEYS", "API_KEYS"] as const;

function tempFile(): string {
  return join(mkdtempSync(join(tmpdir(), "evergreen-dev-")), "nested", "dev-secrets.json");
}

describe("withDevSecrets", () => {
  it("generates missing secrets once, privately, and reuses them", () => {
    const file = tempFile();
    const first = withDevSecrets({}, both, file);
    expect(first.created).toBe(true);
    expect(first.fromFile).toEqual(["ENCRYPTION_KEYS", "API_KEYS"]);
    expect(parseEncryptionKeys(first.env.ENCRYPTION_KEYS ?? "")).toHaveLength(1);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const second = withDevSecrets({}, both, file);
    expect(second.created).toBe(false);
    expect(second.env).toEqual(first.env);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ API_KEYS: first.env.API_KEYS });
  });

  it("lets the environment win and fills only the names asked for", () => {
    const file = tempFile();
    const result = withDevSecrets({ API_KEYS: "from-env-key-0123456789" }, both, file);
    expect(result.env.API_KEYS).toBe("from-env-key-0123456789");
    expect(result.fromFile).toEqual(["ENCRYPTION_KEYS"]);
    expect(withDevSecrets({}, ["ENCRYPTION_KEYS"], file).env.API_KEYS).toBeUndefined();
  });

  it("names the file, and quotes none of it, when the file is not JSON", () => {
    const file = tempFile();
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, '{"API_KEYS": "dev_secret-value", oops');
    expect(() => withDevSecrets({}, both, file)).toThrow(
      `${file}: not valid JSON; delete the file to regenerate it`,
    );
    expect(() => withDevSecrets({}, both, file)).not.toThrow(/secret-value/);
  });

  it("fills nothing in production", () => {
    const file = tempFile();
    const result = withDevSecrets({ NODE_ENV: "production" }, both, file);
    expect(result.env.ENCRYPTION_KEYS).toBeUndefined();
    expect(result.fromFile).toEqual([]);
    expect(() => statSync(file)).toThrow();
  });
});

describe("readDevSecrets", () => {
  it("reads the file the apps created, and never creates one", () => {
    const file = tempFile();
    expect(readDevSecrets(file)).toBeUndefined();
    expect(() => statSync(file)).toThrow();
    const { env } = withDevSecrets({}, both, file);
    expect(readDevSecrets(file)).toEqual({
      ENCRYPTION_KEYS: env.ENCRYPTION_KEYS,
      API_KEYS: env.API_KEYS,
    });
  });
});
