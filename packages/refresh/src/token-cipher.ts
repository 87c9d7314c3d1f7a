import { DecryptionError, type KeyRing } from "@evergreen/crypto";

/**
 * Where each secret lives, as bound into its ciphertext: a value copied to another row or
 * column fails to decrypt.
 */
export const sealAccessToken = (ring: KeyRing, connectionId: string, value: string) =>
  ring.encrypt(value, { entity: "connection", rowId: connectionId, field: "accessToken" });

export const openAccessToken = (ring: KeyRing, connectionId: string, sealed: string) =>
  ring.decrypt(sealed, { entity: "connection", rowId: connectionId, field: "accessToken" });

export const sealRefreshToken = (ring: KeyRing, connectionId: string, value: string) =>
  ring.encrypt(value, { entity: "connection", rowId: connectionId, field: "refreshToken" });

export const openRefreshToken = (ring: KeyRing, connectionId: string, sealed: string) =>
  ring.decrypt(sealed, { entity: "connection", rowId: connectionId, field: "refreshToken" });

export const sealClientSecret = (ring: KeyRing, integrationId: string, value: string) =>
  ring.encrypt(value, { entity: "integration", rowId: integrationId, field: "clientSecret" });

export const openClientSecret = (ring: KeyRing, integrationId: string, sealed: string) =>
  ring.decrypt(sealed, { entity: "integration", rowId: integrationId, field: "clientSecret" });

export const sealCodeVerifier = (ring: KeyRing, sessionId: string, value: string) =>
  ring.encrypt(value, { entity: "connect_session", rowId: sessionId, field: "codeVerifier" });

export const openCodeVerifier = (ring: KeyRing, sessionId: string, sealed: string) =>
  ring.decrypt(sealed, { entity: "connect_session", rowId: sessionId, field: "codeVerifier" });

/**
 * A connection's sealed token as it should be written back: re-sealed under the primary key
 * when an older one sealed it. A refresh that read the row before a rotation re-sealed it
 * (at the same version, see key-rotation.ts) then does not put the old key's value back.
 * A value that does not open is left for the rotation to report.
 */
export function resealConnectionToken(
  ring: KeyRing,
  connectionId: string,
  field: "accessToken" | "refreshToken",
  sealed: string,
): string {
  if (!ring.needsReEncryption(sealed)) return sealed;
  const context = { entity: "connection", rowId: connectionId, field };
  try {
    return ring.encrypt(ring.decrypt(sealed, context), context);
  } catch (error) {
    if (error instanceof DecryptionError) return sealed;
    throw error;
  }
}
