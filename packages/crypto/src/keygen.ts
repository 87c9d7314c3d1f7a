// `npm run keygen [keyId]`: prints one fresh key in ENCRYPTION_KEYS syntax.
import { generateEncryptionKey } from "./key-ring";

console.log(generateEncryptionKey(process.argv[2]));
