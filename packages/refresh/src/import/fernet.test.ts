import { describe, expect, it } from "vitest";
import { decryptFernet, FernetError, looksLikeFernet, parseFernetKey } from "./fernet";
import { fernetFixtures } from "./fernet-fixtures";

const plaintexts = ["ya29.access", "1//refresh", "", "ünïcode ✓", "x".repeat(1000)];
const fx = fernetFixtures(plaintexts);
const key = parseFernetKey(fx.key);

describe("decryptFernet", () => {
  it("opens tokens sealed by Python's cryptography Fernet", () => {
    for (const plaintext of plaintexts) {
      const token = fx.tokens[plaintext] ?? "";
      expect(looksLikeFernet(token)).toBe(true);
      expect(decryptFernet(key, token)).toBe(plaintext);
    }
  });

  it("refuses a tampered token, one under another key and another version", () => {
    expect(() => decryptFernet(key, fx.tampered)).toThrow("does not verify");
    expect(() => decryptFernet(key, fx.foreign)).toThrow("does not verify");
    expect(() => decryptFernet(parseFernetKey(fx.otherKey), fx.tokens["1//refresh"] ?? "")).toThrow(
      "does not verify",
    );
    expect(() => decryptFernet(key, fx.wrongVersion)).toThrow("unsupported Fernet version");
  });

  it("refuses what is not a Fernet token, saying nothing of it", () => {
    for (const text of ["gAAAAA", "gAAAAA!!!!", "plain-token", fx.tampered.slice(0, -4)]) {
      expect(() => decryptFernet(key, text)).toThrow(FernetError);
    }
  });

  it("takes a key of 32 base64url bytes only", () => {
    expect(() => parseFernetKey("short")).toThrow("base64url of 32 bytes");
    expect(() => parseFernetKey(Buffer.alloc(31).toString("base64url"))).toThrow(FernetError);
  });
});
