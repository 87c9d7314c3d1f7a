import { createHmac } from "node:crypto";
import pino, { type DestinationStream, type Logger, type LoggerOptions } from "pino";
import pretty from "pino-pretty";

export type { Logger } from "pino";

/** Property names that may carry a credential, in our camelCase and in OAuth's snake_case. */
const SECRET_KEYS = [
  "accessToken",
  "refreshToken",
  "idToken",
  "clientSecret",
  "access_token",
  "refresh_token",
  "id_token",
  "client_secret",
  "password",
  "authorization",
  "apiKey",
  "ciphertext",
];

/** Redaction paths: each secret key at the top level and up to three objects deep. */
export const REDACT_PATHS = [
  ...SECRET_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`]),
  "req.headers.authorization",
  "req.headers.cookie",
  'res.headers["set-cookie"]',
];

export interface LoggerSettings {
  /** Process name, e.g. `worker`. */
  readonly name: string;
  /** @defaultValue "info" */
  readonly level?: string;
  /**
   * Human-readable lines instead of JSON: for a developer's terminal (main.ts sets it
   * outside production when stdout is a TTY). @defaultValue false
   */
  readonly pretty?: boolean;
}

export function createLogger(settings: LoggerSettings, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    name: settings.name,
    level: settings.level ?? "info",
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    serializers: { err: serializeError, error: serializeError },
    timestamp: pino.stdTimeFunctions.isoTime,
    // `"level":"warn"`, not `"level":40`: what a person grepping or a log pipeline expects.
    formatters: { level: (label) => ({ level: label }) },
  };
  return pino(options, destination ?? stdout(settings.pretty ?? false));
}

/**
 * Synchronous stdout: the last lines before process.exit() (shutdown, fatal config) must
 * not be lost in a buffer. Pretty printing runs in this thread as a stream, not as a pino
 * transport: a transport is a worker thread that loads pino-pretty by name at run time,
 * which a bundled build cannot resolve, and whose last lines an exit can cut.
 */
function stdout(prettyPrint: boolean): DestinationStream {
  if (!prettyPrint) return pino.destination({ dest: 1, sync: true });
  return pretty({
    destination: 1,
    sync: true,
    colorize: true,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname",
  });
}

/**
 * Keeps what helps at 3 a.m. (type, message, code, HTTP status, stack) and drops the
 * rest. HTTP client errors (axios) carry the request config, whose body holds the refresh
 * token and whose headers hold the client secret; pino's default serializer would log
 * every enumerable property of them.
 */
export function serializeError(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const error = value as Error & {
    code?: unknown;
    status?: unknown;
    response?: { status?: unknown };
  };
  const status = error.status ?? error.response?.status;
  return {
    type: error.name,
    message: error.message,
    ...(typeof error.code === "string" ? { code: error.code } : {}),
    ...(typeof status === "number" ? { status } : {}),
    stack: error.stack,
    ...(error.cause instanceof Error ? { cause: serializeError(error.cause) } : {}),
  };
}

/**
 * A short, stable pseudonym of a user-supplied id (such as a connection's `externalId`,
 * often an email address), so logs can be correlated without holding the id itself. Keyed
 * (HMAC-SHA256): a plain hash of an email address is reversed by hashing a list of them.
 */
export function hashId(id: string, key: Buffer): string {
  return createHmac("sha256", key).update(id, "utf8").digest("base64url").slice(0, 16);
}
