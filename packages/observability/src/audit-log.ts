import { closeSync, openSync } from "node:fs";
import pino, { type DestinationStream, type Logger } from "pino";
import { REDACT_PATHS } from "./logger";

/**
 * Where the audit stream goes (SPEC §4 `AUDIT_LOG`): `stdout`, a file path, or (tests) a
 * stream.
 */
export type AuditDestination = "stdout" | string | DestinationStream;

/**
 * One read of a token, or of a grant that yields one: the token route and the connect
 * flow's code exchanges. Never the token.
 */
export interface TokenRead {
  /** The route template, e.g. `/v1/connections/:id/token`. */
  readonly route: string;
  /** The API key's name (never the key), or `oauth_callback` for the public callback. */
  readonly keyName: string;
  /** Absent when no connection was found or made. */
  readonly connectionId?: string | undefined;
  /** The socket's address: fastify's `request.ip` without `trustProxy`. */
  readonly ip: string;
  /** A fixed word: `stored`, `refreshed`, `needs_reauth`, `not_found`, `exchanged`, ... */
  readonly outcome: string;
}

/** Who changed something, for the security events a request causes. */
interface Actor {
  /** The API key's name, never the key. */
  readonly keyName: string;
  readonly ip: string;
}

export type SecurityEvent =
  | (Actor & {
      /** A client secret was set: on create, or an update that changed it. */
      readonly event: "integration_secret_changed";
      readonly integration: string;
      readonly created: boolean;
    })
  | (Actor & {
      readonly event:
        | "webhook_secret_rotated"
        | "webhook_endpoint_created"
        | "webhook_endpoint_deleted";
      readonly endpointId: string;
    })
  | (Actor & {
      /** The admin console: a session started or ended by its user. */
      readonly event: "admin_login" | "admin_logout";
    })
  | (Actor & {
      /** A known key without the `admin` scope tried to sign in to the console. */
      readonly event: "admin_login_refused";
    })
  | (Actor & {
      /** A known key asked a route its scopes do not cover (a 403). */
      readonly event: "api_key_forbidden";
      /** The route's template, never its path. */
      readonly route: string;
    })
  | (Actor & {
      /** An action taken in the admin console, with its outcome (a fixed word). */
      readonly event: "admin_action";
      readonly action: "refresh" | "validate" | "delete";
      readonly connectionId: string;
      readonly outcome: string;
    })
  | {
      /** A `keys:rotate` run: started, finished or failed. */
      readonly event: "key_rotation";
      readonly phase: "started" | "finished" | "failed";
      readonly primaryKeyId: string;
      readonly dryRun: boolean;
      /** Ciphertexts per key id (ids only): before the run when started, after it when finished. */
      readonly byKey?: Readonly<Record<string, number>>;
      /** Rows re-sealed (in a dry run: that would be). */
      readonly resealed?: number;
      /** Writes that lost to a concurrent change and were retried. */
      readonly fenced?: number;
      /** Values that could not be re-sealed (their key is missing, or they do not open). */
      readonly failed?: number;
      /** Stopped by a signal before the end (run again to resume). */
      readonly stopped?: boolean;
      /** Why a failed run failed: the error's name, never its message. */
      readonly error?: string;
    };

/** A request refused for a missing or unknown API key (a 401). */
export interface RejectedKey {
  readonly ip: string;
  readonly route: string;
  /** Whether a bearer key was presented at all (never the key). */
  readonly presented: boolean;
}

export interface AuditLogOptions {
  /** Process name, e.g. `api`. */
  readonly name: string;
  readonly destination: AuditDestination;
  /**
   * A rejected key is written at most once per source (an IPv4 address, an IPv6 /64) per
   * this window; the next line
   * of that IP carries how many were left out. @defaultValue 10000
   */
  readonly rejectWindowMs?: number;
  /** Source IPs remembered for that; the oldest is forgotten first. @defaultValue 10000 */
  readonly maxTrackedIps?: number;
  /** @defaultValue Date.now */
  readonly now?: () => number;
  /**
   * A security event's line could not be written. Those lines record what was done or
   * refused anyway (an integration stored, a key rejected): the answer stands, and this is
   * told instead. Token reads are never answered unrecorded: `tokenRead` throws.
   * @defaultValue throws the AuditWriteError
   */
  readonly onWriteError?: (error: AuditWriteError) => void;
}

/** AUDIT_LOG names a file that cannot be opened for appending: a start-up failure. */
export class AuditLogError extends Error {
  override name = "AuditLogError";
}

/**
 * An audit line could not be written (the disk full, the file's device failing). A token
 * read is then not answered, since every token handed out is on the record.
 */
export class AuditWriteError extends Error {
  override name = "AuditWriteError";
  constructor(cause: unknown) {
    super("the audit log cannot be written", { cause });
  }
}

const raise = (error: AuditWriteError): never => {
  throw error;
};

export interface AuditLog {
  tokenRead(read: TokenRead): void;
  security(event: SecurityEvent): void;
  /** Rate-limited per source: IPv4 address or IPv6 /64 (see `rejectWindowMs`). */
  rejectedKey(attempt: RejectedKey): void;
  /**
   * Opens the AUDIT_LOG path again (on SIGHUP, after logrotate moved the file): lines go to
   * the file now at that path. A no-op for stdout and streams.
   * @throws AuditLogError when the path cannot be opened; lines keep going to the old file.
   */
  reopen(): void;
  /** Writes the counts of rejected keys still held back, then flushes. */
  close(): void;
}

/**
 * The audit stream of issue 11: token reads and security events as JSON lines on their
 * own pino instance, never PostgreSQL, so a high read rate costs a line write. Every line
 * carries `"audit":true`, so that on a shared stdout a pipeline can route it apart from
 * the application log. Writes are synchronous: a line is written before the answer it
 * records is sent, and none is lost in a buffer at exit.
 */
export function createAuditLog(options: AuditLogOptions): AuditLog {
  const destination = destinationStream(options.destination);
  const logger = pino(
    {
      name: options.name,
      level: "info",
      base: { audit: true },
      // The same paths as the application log: a field added carelessly later is still
      // censored.
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  /** Writes one line; a write that fails goes to `failed` as an AuditWriteError. */
  const line = (write: () => void, failed: (error: AuditWriteError) => void) => {
    try {
      write();
    } catch (error) {
      failed(new AuditWriteError(error));
    }
  };
  const told = options.onWriteError ?? raise;
  const rejected = rejectionLimiter(logger, options, (write) => line(write, told));
  return {
    tokenRead: (read) =>
      line(() => logger.info({ kind: "token_read", ...read }, "token read"), raise),
    security: (event) => line(() => logger.info({ kind: "security", ...event }, event.event), told),
    rejectedKey: rejected.record,
    reopen: () => {
      if (typeof options.destination !== "string" || options.destination === "stdout") return;
      // Tried first: a failed reopen inside pino's stream would also be thrown at the
      // process on the next tick.
      checkCanAppend(options.destination);
      (destination as ReturnType<typeof pino.destination>).reopen();
    },
    close: () => {
      rejected.flush();
      logger.flush();
    },
  };
}

function destinationStream(destination: AuditDestination): DestinationStream {
  if (typeof destination !== "string") return destination;
  if (destination === "stdout") return pino.destination({ dest: 1, sync: true });
  // Tried here, not left to pino, so that a bad path stops the process at start with its
  // reason; the directory is not created: a mistyped path should not make one.
  checkCanAppend(destination);
  // By path, not by descriptor, so that reopen() can open the path again.
  return pino.destination({ dest: destination, sync: true, append: true, mkdir: false });
}

function checkCanAppend(destination: string): void {
  try {
    // Created readable by its owner only: key names, addresses and connection ids.
    closeSync(openSync(destination, "a", 0o600));
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new AuditLogError(
      `AUDIT_LOG: cannot open ${destination} for appending (${typeof code === "string" ? code : (error as Error).message})`,
    );
  }
}

/**
 * A 401 flood (a scanner, a client with a revoked key) would write a line per request:
 * one line per IP per window, the next one counting those left out. The map is bounded,
 * so many source addresses cost memory up to `maxTrackedIps` entries.
 */
function rejectionLimiter(
  logger: Logger,
  options: AuditLogOptions,
  writeLine: (write: () => void) => void,
) {
  const windowMs = options.rejectWindowMs ?? 10_000;
  const maxIps = options.maxTrackedIps ?? 10_000;
  const now = options.now ?? Date.now;
  const byIp = new Map<string, { since: number; suppressed: number }>();
  const write = (
    attempt: RejectedKey | { readonly ip: string },
    source: string,
    suppressed: number,
  ) =>
    writeLine(() =>
      logger.info(
        { kind: "security", event: "api_key_rejected", ...attempt, source, suppressed },
        "api_key_rejected",
      ),
    );
  /** The count of a source's window that no later line will carry. */
  const settle = (source: string, suppressed: number) => {
    if (suppressed > 0) write({ ip: source }, source, suppressed);
  };
  return {
    record(attempt: RejectedKey): void {
      const at = now();
      const source = rejectionSource(attempt.ip);
      const seen = byIp.get(source);
      if (seen && at - seen.since < windowMs) {
        seen.suppressed += 1;
        return;
      }
      byIp.delete(source);
      if (byIp.size >= maxIps) {
        const [oldest] = byIp;
        if (oldest) {
          byIp.delete(oldest[0]);
          settle(oldest[0], oldest[1].suppressed);
        }
      }
      write(attempt, source, seen?.suppressed ?? 0);
      // Re-inserted, so the map's order is by window start: the oldest goes first.
      byIp.set(source, { since: at, suppressed: 0 });
    },
    flush(): void {
      for (const [ip, { suppressed }] of byIp) settle(ip, suppressed);
      byIp.clear();
    },
  };
}

/**
 * What the rejection limit counts by: an IPv4 address, or an IPv6 address's /64. A single
 * IPv6 client commonly holds a whole /64 and can send each request from another address of
 * it; by address, each would write its own line and push other sources out of the map.
 */
function rejectionSource(ip: string): string {
  // IPv4, and IPv6 forms that end in a dotted IPv4 address (::ffff:192.0.2.1): as given.
  if (!ip.includes(":") || ip.includes(".")) return ip;
  const address = ip.split("%")[0] ?? ip;
  const [head = "", tail] = address.split("::");
  const before = head === "" ? [] : head.split(":");
  const after = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups =
    tail === undefined
      ? before
      : [...before, ...Array<string>(8 - before.length - after.length).fill("0"), ...after];
  const prefix = groups.slice(0, 4).map((group) => Number.parseInt(group, 16).toString(16));
  return `${prefix.join(":")}::/64`;
}
