/** Base of every failure to open a ciphertext. Messages never contain key material. */
export class DecryptionError extends Error {
  override name = "DecryptionError";
}

/** The ciphertext names a key id that is not in the ring (a key was dropped too early). */
export class UnknownKeyError extends DecryptionError {
  override name = "UnknownKeyError";
  constructor(readonly keyId: string) {
    super(`no key "${keyId}" in the key ring`);
  }
}

/** The ring holds a key under this id, but not the one that sealed the value. */
export class WrongKeyError extends DecryptionError {
  override name = "WrongKeyError";
  constructor(readonly keyId: string) {
    super(`key "${keyId}" in the ring is not the key that encrypted this value`);
  }
}

/** Authentication failed: bytes changed, or the value was moved to another row or field. */
export class TamperedCiphertextError extends DecryptionError {
  override name = "TamperedCiphertextError";
  constructor(readonly keyId: string) {
    super("ciphertext failed authentication (altered, or bound to another row or field)");
  }
}

/** Too short to hold the header, IV and tag. */
export class TruncatedCiphertextError extends DecryptionError {
  override name = "TruncatedCiphertextError";
  constructor() {
    super("ciphertext is truncated");
  }
}

/** Not an Evergreen ciphertext at all, or of a version this build does not know. */
export class MalformedCiphertextError extends DecryptionError {
  override name = "MalformedCiphertextError";
}
