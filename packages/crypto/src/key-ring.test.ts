import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  MalformedCiphertextError,
  TamperedCiphertextError,
  TruncatedCiphertextError,
  UnknownKeyError,
  WrongKeyError,
} from "./errors";
import {
  type CipherContext,
  generateEncryptionKey,
  KeyRing,
  parseEncryptionKeys,
} from "./key-ring";

const row1: CipherContext = { entity: "connection", rowId: "row-1", field: "refreshToken" };
const secret = "1//0gRefreshTokenValue-ÄÖ✓";

function ringOf(...ids: string[]) {
  return new KeyRing(ids.map((id) => ({ id, key: randomBytes(32) })));
}

/** Flips one bit inside the base64url body of a ciphertext at byte `offset`. */
function flipByte(ciphertext: string, offset: number): string {
  const [version, keyId, encoded = ""] = ciphertext.split(".");
  const blob = Buffer.from(encoded, "base64url");
  blob.writeUInt8((blob.readUInt8(offset) ^ 0x01) & 0xff, offset);
  return `${version}.${keyId}.${blob.toString("base64url")}`;
}

describe("KeyRing", () => {
  it("round-trips a value and never repeats a ciphertext", () => {
    const ring = ringOf("a");
    const first = ring.encrypt(secret, row1);
    const second = ring.encrypt(secret, row1);
    expect(first).not.toEqual(second);
    expect(first).not.toContain("RefreshToken");
    expect(first.startsWith("ev1.a.")).toBe(true);
    expect(ring.decrypt(first, row1)).toBe(secret);
    expect(ring.decrypt(second, row1)).toBe(secret);
    expect(ring.decrypt(ring.encrypt("", row1), row1)).toBe("");
  });

  it("refuses a ciphertext moved to another row", () => {
    const ring = ringOf("a");
    const sealed = ring.encrypt(secret, row1);
    expect(() => ring.decrypt(sealed, { ...row1, rowId: "row-2" })).toThrow(
      TamperedCiphertextError,
    );
  });

  it("refuses a ciphertext moved to another field of the same row", () => {
    const ring = ringOf("a");
    const sealed = ring.encrypt(secret, row1);
    expect(() => ring.decrypt(sealed, { ...row1, field: "accessToken" })).toThrow(
      TamperedCiphertextError,
    );
    expect(() => ring.decrypt(sealed, { ...row1, entity: "integration" })).toThrow(
      TamperedCiphertextError,
    );
  });

  it("detects a changed byte in the IV, the body and the tag", () => {
    const ring = ringOf("a");
    const sealed = ring.encrypt(secret, row1);
    const length = Buffer.from(sealed.split(".")[2] ?? "", "base64url").length;
    for (const offset of [4, 4 + 12, length - 1]) {
      expect(() => ring.decrypt(flipByte(sealed, offset), row1)).toThrow(TamperedCiphertextError);
    }
  });

  it("names a wrong key under a known id apart from tampering", () => {
    const sealed = ringOf("a").encrypt(secret, row1);
    expect(() => ringOf("a").decrypt(sealed, row1)).toThrow(WrongKeyError);
  });

  it("names an unknown key id", () => {
    const sealed = ringOf("old").encrypt(secret, row1);
    expect(() => ringOf("new").decrypt(sealed, row1)).toThrow(UnknownKeyError);
  });

  it("names truncated and malformed input", () => {
    const ring = ringOf("a");
    const sealed = ring.encrypt(secret, row1);
    expect(() => ring.decrypt(sealed.slice(0, 20), row1)).toThrow(TruncatedCiphertextError);
    expect(() => ring.decrypt("ev1.a", row1)).toThrow(TruncatedCiphertextError);
    expect(() => ring.decrypt("plaintext-token", row1)).toThrow(MalformedCiphertextError);
    expect(() => ring.decrypt("ev1.a.not base64!", row1)).toThrow(MalformedCiphertextError);
  });

  it("decrypts with the second key of the ring and encrypts with the first", () => {
    const oldKey = { id: "old", key: randomBytes(32) };
    const newKey = { id: "new", key: randomBytes(32) };
    const sealedBefore = new KeyRing([oldKey]).encrypt(secret, row1);
    const rotated = new KeyRing([newKey, oldKey]);
    expect(rotated.keyIds).toEqual(["new", "old"]);
    expect(rotated.decrypt(sealedBefore, row1)).toBe(secret);
    expect(rotated.needsReEncryption(sealedBefore)).toBe(true);
    const sealedAfter = rotated.encrypt(secret, row1);
    expect(sealedAfter.startsWith("ev1.new.")).toBe(true);
    expect(rotated.needsReEncryption(sealedAfter)).toBe(false);
  });
});

describe("parseEncryptionKeys", () => {
  it("parses a generated key list", () => {
    const spec = `${generateEncryptionKey("one")}, ${generateEncryptionKey("two")}`;
    expect(parseEncryptionKeys(spec).map((key) => key.id)).toEqual(["one", "two"]);
    expect(KeyRing.fromSpec(spec).primaryKeyId).toBe("one");
  });

  it.each([
    ["", /no encryption key/],
    ["nokey", /keyId:base64/],
    [`bad id:${randomBytes(32).toString("base64")}`, /keyId:base64/],
    [`short:${randomBytes(16).toString("base64")}`, /exactly 32 bytes/],
    [
      `a:${randomBytes(32).toString("base64")},a:${randomBytes(32).toString("base64")}`,
      /duplicate/,
    ],
  ])("rejects %j", (spec, message) => {
    expect(() => parseEncryptionKeys(spec)).toThrow(message);
  });
});

describe("KeyRing.deriveKey", () => {
  it("derives one stable 32-byte key per purpose from the primary key", () => {
    const spec = generateEncryptionKey("k1");
    const ring = KeyRing.fromSpec(spec);
    const logs = ring.deriveKey("log pseudonyms");
    expect(logs).toHaveLength(32);
    expect(KeyRing.fromSpec(spec).deriveKey("log pseudonyms")).toEqual(logs);
    expect(ring.deriveKey("other")).not.toEqual(logs);
    expect(KeyRing.fromSpec(generateEncryptionKey("k1")).deriveKey("log pseudonyms")).not.toEqual(
      logs,
    );
  });
});
