import { randomFillSync } from "node:crypto";

const POOL_BYTES = 4096;

let pool = Buffer.alloc(0);
let offset = 0;

/**
 * Random bytes from the system CSPRNG, drawn 4 KiB at a time. Each draw costs a call into
 * OpenSSL whatever its size; one per sealed token was about 4 % of a worker's CPU (a
 * refresh seals two). A filled pool is handed out once and never refilled in place, so a
 * returned view is never overwritten. Node's own `randomUUID` caches the same way.
 */
export function pooledRandomBytes(size: number): Buffer {
  if (size > POOL_BYTES) return randomFillSync(Buffer.allocUnsafe(size));
  if (offset + size > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
    offset = 0;
  }
  const bytes = pool.subarray(offset, offset + size);
  offset += size;
  return bytes;
}
