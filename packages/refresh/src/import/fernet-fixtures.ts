// Fernet tokens from an independent implementation: Python's `cryptography` package.
import { execFileSync } from "node:child_process";

export interface FernetFixtures {
  readonly key: string;
  readonly otherKey: string;
  /** Each plaintext sealed under `key`. */
  readonly tokens: Record<string, string>;
  /** A token under `key` with one ciphertext byte flipped after signing. */
  readonly tampered: string;
  /** A token under `otherKey`. */
  readonly foreign: string;
  /** Version byte 0x81, signed correctly under `key`. */
  readonly wrongVersion: string;
}

const SCRIPT = `
import base64, hmac, hashlib, json, sys
from cryptography.fernet import Fernet
key, other = Fernet.generate_key(), Fernet.generate_key()
f = Fernet(key)
tokens = {p: f.encrypt(p.encode()).decode() for p in json.loads(sys.argv[1])}
raw = bytearray(base64.urlsafe_b64decode(f.encrypt(b"tampered-secret")))
raw[30] ^= 1
signing = base64.urlsafe_b64decode(key)[:16]
v = bytearray(base64.urlsafe_b64decode(f.encrypt(b"future-format")))[:-32]
v[0] = 0x81
v += hmac.new(signing, bytes(v), hashlib.sha256).digest()
print(json.dumps({
  "key": key.decode(), "otherKey": other.decode(), "tokens": tokens,
  "tampered": base64.urlsafe_b64encode(bytes(raw)).decode(),
  "foreign": Fernet(other).encrypt(b"foreign-secret").decode(),
  "wrongVersion": base64.urlsafe_b64encode(bytes(v)).decode(),
}))
`;

export function fernetFixtures(plaintexts: readonly string[]): FernetFixtures {
  const out = execFileSync("python3", ["-c", SCRIPT, JSON.stringify(plaintexts)], {
    encoding: "utf8",
  });
  return JSON.parse(out) as FernetFixtures;
}
