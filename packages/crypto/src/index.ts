export {
  DecryptionError,
  MalformedCiphertextError,
  TamperedCiphertextError,
  TruncatedCiphertextError,
  UnknownKeyError,
  WrongKeyError,
} from "./errors";
export {
  type CipherContext,
  type EncryptionKey,
  generateEncryptionKey,
  KeyRing,
  KeySpecError,
  parseEncryptionKeys,
} from "./key-ring";
