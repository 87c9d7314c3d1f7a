import { createDecipheriv, createHmac, timingSafeEqual } from "node:crypto";

/** A Fernet key: the first 16 bytes sign, the last 16 encrypt. */
export interface FernetKey {
  readonly signing: Buffer;
  readonly encryption: Buffer;
}

export class FernetError extends Error {
  override name = "FernetError";
}

const VERSION = 0x80;
/** version (1) + timestamp (8) + IV (16) */
const HEADER_BYTES = 25;
const HMAC_BYTES = 32;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** A Fernet key as Python's `Fernet.generate_key()` writes it: base64url of 32 bytes. */
export function parseFernetKey(text: string): FernetKey {
  const bytes = BASE64URL.test(text) ? Buffer.from(text, "base64url") : Buffer.alloc(0);
  if (bytes.length !== 32) throw new FernetError("a Fernet key is base64url of 32 bytes");
  return { signing: bytes.subarray(0, 16), encryption: bytes.subarray(16) };
}

/**
 * Every Fernet token starts with "gAAAAA": version 0x80 then a timestamp whose high bytes
 * are zero. A value that does not is taken as plain text by the import.
 */
export function looksLikeFernet(value: string): boolean {
  return value.startsWith("gAAAAA");
}

/**
 * Whether the value is a Fernet token by its shape alone (version 0x80, a whole number of
 * cipher blocks, the HMAC): what an import given no key must not store as a token.
 */
export function isFernetShaped(value: string): boolean {
  return looksLikeFernet(value) && fernetBytes(value)?.[0] === VERSION;
}

/** The token's bytes when its length is a Fernet token's; null otherwise. */
function fernetBytes(token: string): Buffer | null {
  const bytes = BASE64URL.test(token) ? Buffer.from(token, "base64url") : Buffer.alloc(0);
  const body = bytes.length - HEADER_BYTES - HMAC_BYTES;
  return body >= 16 && body % 16 === 0 ? bytes : null;
}

/**
 * Opens a Fernet token (github.com/fernet/spec): base64url of version 0x80, an 8-byte
 * timestamp, a 16-byte IV, AES-128-CBC ciphertext (PKCS7) and an HMAC-SHA256 of all of that.
 * The HMAC is checked in constant time before anything is decrypted. The timestamp is not
 * checked: imported tokens were sealed whenever the old system stored them.
 */
export function decryptFernet(key: FernetKey, token: string): string {
  const bytes = fernetBytes(token);
  if (bytes === null) throw new FernetError("not a Fernet token");
  if (bytes[0] !== VERSION) throw new FernetError("unsupported Fernet version");
  const signed = bytes.subarray(0, bytes.length - HMAC_BYTES);
  const expected = createHmac("sha256", key.signing).update(signed).digest();
  if (!timingSafeEqual(expected, bytes.subarray(bytes.length - HMAC_BYTES))) {
    throw new FernetError("Fernet token does not verify under the key");
  }
  const decipher = createDecipheriv("aes-128-cbc", key.encryption, bytes.subarray(9, HEADER_BYTES));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(signed.subarray(HEADER_BYTES)), decipher.final()]);
  } catch {
    // Only a token signed with this key reaches here: its padding is the signer's bug.
    throw new FernetError("Fernet token has bad padding");
  }
  try {
    // Strict: bytes that are not UTF-8 would be stored as U+FFFD, another token.
    return new TextDecoder("utf-8", { fatal: true }).decode(plain);
  } catch {
    throw new FernetError("Fernet token does not hold UTF-8 text");
  }
}
