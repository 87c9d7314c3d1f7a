import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import {
  MalformedCiphertextError,
  TamperedCiphertextError,
  TruncatedCiphertextError,
  UnknownKeyError,
  WrongKeyError,
} from "./errors";
import { pooledRandomBytes } from "./random-pool";

/**
 * Ciphertext format, version 1:
 *
 *   ev1.<keyId>.<base64url(check[4] | iv[12] | ciphertext | tag[16])>
 *
 * `check` is the first four bytes of HMAC-SHA256(key, "evergreen key check"). It is what
 * lets us tell "this was sealed with another key under the same id" (an operator pasted
 * the wrong secret) apart from "the bytes were changed or moved", which GCM alone reports
 * as the same authentication failure. Four bytes of an HMAC reveal nothing usable about
 * the key.
 */
const VERSION = "ev1";
const CHECK_BYTES = 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

export interface EncryptionKey {
  /** Short name stored in every ciphertext, e.g. `k2026a`. */
  readonly id: string;
  /** 32 raw bytes (AES-256). */
  readonly key: Buffer;
}

/**
 * Where a value lives. Bound into the ciphertext as additional authenticated data, so a
 * ciphertext copied into another row or another column fails to decrypt.
 */
export interface CipherContext {
  /** Table or entity name, e.g. `connection`. */
  readonly entity: string;
  /** Primary key of the row. */
  readonly rowId: string;
  /** Column name, e.g. `refreshToken`. */
  readonly field: string;
}

interface RingKey extends EncryptionKey {
  readonly check: Buffer;
}

/** Every problem of an `ENCRYPTION_KEYS` value, one message each; never shows a key. */
export class KeySpecError extends Error {
  override name = "KeySpecError";
  constructor(readonly problems: readonly string[]) {
    super(problems.join("; "));
  }
}

/** Parses `ENCRYPTION_KEYS` syntax: `keyId:base64(32 bytes)[,keyId:base64...]`. */
export function parseEncryptionKeys(spec: string): EncryptionKey[] {
  const entries = spec
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  if (entries.length === 0) throw new KeySpecError(["no encryption key given"]);
  const seen = new Set<string>();
  const problems: string[] = [];
  const keys = entries.flatMap((entry, index) => {
    const colon = entry.indexOf(":");
    const id = colon === -1 ? "" : entry.slice(0, colon);
    const encoded = colon === -1 ? "" : entry.slice(colon + 1);
    if (!KEY_ID_PATTERN.test(id)) {
      problems.push(`key #${index + 1}: expected keyId:base64, keyId of 1-32 [A-Za-z0-9_-]`);
      return [];
    }
    if (seen.has(id)) problems.push(`key #${index + 1}: duplicate key id "${id}"`);
    seen.add(id);
    const key = Buffer.from(encoded, "base64");
    if (key.length !== KEY_BYTES || key.toString("base64") !== encoded) {
      problems.push(`key "${id}": must be base64 of exactly ${KEY_BYTES} bytes`);
      return [];
    }
    return [{ id, key }];
  });
  if (problems.length > 0) throw new KeySpecError(problems);
  return keys;
}

/** A fresh key in `ENCRYPTION_KEYS` syntax. */
export function generateEncryptionKey(id = `k${Date.now().toString(36)}`): string {
  if (!KEY_ID_PATTERN.test(id)) throw new KeySpecError(["key id must be 1-32 of [A-Za-z0-9_-]"]);
  return `${id}:${randomBytes(KEY_BYTES).toString("base64")}`;
}

/**
 * AES-256-GCM with several keys: the first encrypts, every key decrypts, so keys can be
 * rotated by prepending a new one and re-encrypting at leisure.
 */
export class KeyRing {
  readonly #keys: ReadonlyMap<string, RingKey>;
  readonly #primary: RingKey;
  readonly #derived = new Map<string, Buffer>();

  constructor(keys: readonly EncryptionKey[]) {
    const ring = new Map<string, RingKey>();
    for (const { id, key } of keys) {
      if (!KEY_ID_PATTERN.test(id)) throw new Error(`invalid key id "${id}"`);
      if (key.length !== KEY_BYTES) throw new Error(`key "${id}" must be ${KEY_BYTES} bytes`);
      if (ring.has(id)) throw new Error(`duplicate key id "${id}"`);
      ring.set(id, { id, key: Buffer.from(key), check: keyCheck(key) });
    }
    const primary = ring.values().next();
    if (primary.done) throw new Error("a key ring needs at least one key");
    this.#keys = ring;
    this.#primary = primary.value;
  }

  static fromSpec(spec: string): KeyRing {
    return new KeyRing(parseEncryptionKeys(spec));
  }

  /** Id of the key that encrypts. */
  get primaryKeyId(): string {
    return this.#primary.id;
  }

  /** Ids of every key in the ring, the primary first. */
  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  /**
   * A 32-byte key for another purpose (HKDF-SHA256 of the primary key, `purpose` as info),
   * so secrets such as the log pseudonym key need no configuration of their own. It
   * changes when the primary key is rotated.
   */
  deriveKey(purpose: string): Buffer {
    let derived = this.#derived.get(purpose);
    if (!derived) {
      derived = Buffer.from(hkdfSync("sha256", this.#primary.key, "", `evergreen ${purpose}`, 32));
      this.#derived.set(purpose, derived);
    }
    return derived;
  }

  encrypt(plaintext: string, context: CipherContext): string {
    const iv = pooledRandomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#primary.key, iv);
    cipher.setAAD(aad(this.#primary.id, context));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    const blob = Buffer.concat([this.#primary.check, iv, body, cipher.getAuthTag()]);
    return `${VERSION}.${this.#primary.id}.${blob.toString("base64url")}`;
  }

  decrypt(ciphertext: string, context: CipherContext): string {
    const { keyId, blob } = splitCiphertext(ciphertext);
    const ringKey = this.#keys.get(keyId);
    if (!ringKey) throw new UnknownKeyError(keyId);
    if (blob.length < CHECK_BYTES + IV_BYTES + TAG_BYTES) throw new TruncatedCiphertextError();
    const check = blob.subarray(0, CHECK_BYTES);
    if (!timingSafeEqual(check, ringKey.check)) throw new WrongKeyError(keyId);
    const iv = blob.subarray(CHECK_BYTES, CHECK_BYTES + IV_BYTES);
    const tag = blob.subarray(blob.length - TAG_BYTES);
    const body = blob.subarray(CHECK_BYTES + IV_BYTES, blob.length - TAG_BYTES);
    const decipher = createDecipheriv("aes-256-gcm", ringKey.key, iv);
    decipher.setAAD(aad(keyId, context));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
    } catch {
      throw new TamperedCiphertextError(keyId);
    }
  }

  /** True when the value was sealed with a key other than the primary one. */
  needsReEncryption(ciphertext: string): boolean {
    return splitCiphertext(ciphertext).keyId !== this.#primary.id;
  }
}

function splitCiphertext(ciphertext: string): { keyId: string; blob: Buffer } {
  const parts = ciphertext.split(".");
  if (parts[0] !== VERSION) throw new MalformedCiphertextError("unknown ciphertext version");
  if (parts.length < 3) throw new TruncatedCiphertextError();
  const [, keyId = "", encoded = ""] = parts;
  if (parts.length > 3 || !KEY_ID_PATTERN.test(keyId) || !/^[A-Za-z0-9_-]*$/.test(encoded)) {
    throw new MalformedCiphertextError("ciphertext is not in ev1.<keyId>.<base64url> form");
  }
  return { keyId, blob: Buffer.from(encoded, "base64url") };
}

function keyCheck(key: Buffer): Buffer {
  return createHmac("sha256", key).update("evergreen key check").digest().subarray(0, CHECK_BYTES);
}

function aad(keyId: string, { entity, rowId, field }: CipherContext): Buffer {
  // Length-prefixed parts, so ("a", "bc") and ("ab", "c") never produce the same bytes.
  return Buffer.from(
    [VERSION, keyId, entity, rowId, field].map((part) => `${part.length}:${part}`).join("|"),
    "utf8",
  );
}
