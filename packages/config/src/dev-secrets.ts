import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { generateEncryptionKey } from "@evergreen/crypto";

/** Git-ignored file at the repository root where development secrets are kept. */
export const DEV_SECRETS_FILE = fileURLToPath(
  new URL("../../../.local/dev-secrets.json", import.meta.url),
);

export const DEV_SECRET_NAMES = ["ENCRYPTION_KEYS", "API_KEYS"] as const;
export type DevSecretName = (typeof DEV_SECRET_NAMES)[number];

export interface DevSecrets {
  /** The environment with missing secrets filled in. */
  readonly env: Record<string, string | undefined>;
  /** Names taken from the local file rather than the environment. */
  readonly fromFile: readonly DevSecretName[];
  /** True when this call created the file. */
  readonly created: boolean;
}

/**
 * Outside production, fills each of `names` missing from the environment from a local file,
 * creating it on first use, so `npm start` works with nothing configured. In production
 * the environment is returned untouched and the config schema refuses the gap.
 */
export function withDevSecrets(
  env: Readonly<Record<string, string | undefined>>,
  names: readonly DevSecretName[],
  file: string = DEV_SECRETS_FILE,
): DevSecrets {
  const missing = names.filter((name) => !env[name]?.trim());
  if (env.NODE_ENV === "production" || missing.length === 0) {
    return { env: { ...env }, fromFile: [], created: false };
  }
  const { secrets, created } = readOrCreate(file);
  const filled: Record<string, string | undefined> = { ...env };
  for (const name of missing) filled[name] = secrets[name];
  return { env: filled, fromFile: missing, created };
}

/** The development secrets `npm start` uses, or undefined before any app has created them. */
export function readDevSecrets(
  file: string = DEV_SECRETS_FILE,
): Record<DevSecretName, string> | undefined {
  try {
    return readSecrets(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function readOrCreate(file: string): { secrets: Record<DevSecretName, string>; created: boolean } {
  const existing = readDevSecrets(file);
  if (existing) return { secrets: existing, created: false };
  // api, scheduler and worker start together under `npm start`: write a private temp file,
  // then hard-link it into place, which fails for all but the first process, so every
  // process ends up with the same keys and nobody reads a half-written file.
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}`;
  const secrets: Record<DevSecretName, string> = {
    ENCRYPTION_KEYS: generateEncryptionKey("dev1"),
    API_KEYS: `dev_${randomBytes(24).toString("base64url")}`,
  };
  writeFileSync(temp, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  try {
    linkSync(temp, file);
    return { secrets, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return { secrets: readSecrets(file), created: false };
  } finally {
    rmSync(temp, { force: true });
  }
}

function readSecrets(file: string): Record<DevSecretName, string> {
  const text = readFileSync(file, "utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the file's text, which holds the secrets.
    throw new Error(`${file}: not valid JSON; delete the file to regenerate it`);
  }
  const record = (parsed ?? {}) as Record<string, unknown>;
  const secrets = {} as Record<DevSecretName, string>;
  for (const name of DEV_SECRET_NAMES) {
    const value = record[name];
    if (typeof value !== "string")
      throw new Error(`${file}: ${name} is missing; delete the file to regenerate it`);
    secrets[name] = value;
  }
  return secrets;
}
