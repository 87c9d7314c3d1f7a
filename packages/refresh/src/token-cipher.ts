import type { KeyRing } from "@evergreen/crypto";

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
