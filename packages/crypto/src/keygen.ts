// `npm run keygen [keyId]`: prints one fresh key in ENCRYPTION_KEYS syntax.
import { generateEncryptionKey, KeySpecError } from "./key-ring";

const USAGE = "usage: npm run keygen [-- <keyId>]   (keyId: 1-32 of a-z A-Z 0-9 _ -)";
const args = process.argv.slice(2);
if (args.length > 1 || args[0] === "--help" || args[0] === "-h") {
  process.stderr.write(`${USAGE}\n`);
  process.exit(args.length > 1 ? 2 : 0);
}
try {
  console.log(generateEncryptionKey(args[0]));
} catch (error) {
  if (!(error instanceof KeySpecError)) throw error;
  process.stderr.write(`keygen: ${error.message}\n${USAGE}\n`);
  process.exit(2);
}
