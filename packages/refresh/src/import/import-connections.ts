import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { isDeepStrictEqual } from "node:util";
import type { Connection } from "@evergreen/db";
import {
  type RegistrationDeps,
  registerConnection,
  UnknownIntegrationError,
} from "../register-connection";
import { openAccessToken, openRefreshToken } from "../token-cipher";
import type { FernetKey } from "./fernet";
import { type ImportedConnection, parseImportLine } from "./import-line";

export interface ImportOptions {
  /** The integration's key: every line becomes one of its connections. */
  readonly integration: string;
  /** JSON lines, read as they come: the file is never held whole. */
  readonly input: Readable;
  /** Token fields that are Fernet tokens are opened with it. */
  readonly fernetKey?: FernetKey | undefined;
  /** Parse, open and compare, but write nothing. @defaultValue false */
  readonly dryRun?: boolean | undefined;
  /** Lines being stored at once. @defaultValue 16 */
  readonly concurrency?: number | undefined;
  /** Called every `progressEvery` lines and once at the end. */
  readonly onProgress?: ((summary: ImportSummary) => void) | undefined;
  /** @defaultValue 1000 */
  readonly progressEvery?: number | undefined;
  /** A line that was not imported, with a reason that never holds a value from the line. */
  readonly onLineError?: ((line: number, reason: string) => void) | undefined;
}

export interface ImportSummary {
  /** Non-blank lines read so far. */
  lines: number;
  created: number;
  updated: number;
  /** Stored already with these tokens, scope and metadata: left alone. */
  unchanged: number;
  failed: number;
}

/**
 * Imports connections from JSON lines, each stored by registerConnection exactly as
 * `POST /v1/connections` stores it (sealed, upserted, evented, scheduled; pass a
 * `spreadWindowSeconds` in `deps` so a bulk of tokens expiring together does not refresh
 * together). A line whose connection already holds the same tokens, scope and metadata is
 * left alone, so re-running an import writes nothing: no new version, event or schedule.
 *
 * @throws UnknownIntegrationError before reading a line when the integration does not exist.
 */
export async function importConnections(
  deps: RegistrationDeps,
  options: ImportOptions,
): Promise<ImportSummary> {
  const integration = await deps.prisma.integration.findUnique({
    where: { key: options.integration },
  });
  if (!integration) throw new UnknownIntegrationError(options.integration);
  const concurrency = options.concurrency ?? 16;
  const progressEvery = options.progressEvery ?? 1000;
  const summary: ImportSummary = { lines: 0, created: 0, updated: 0, unchanged: 0, failed: 0 };

  const fail = (line: number, reason: string) => {
    summary.failed += 1;
    options.onLineError?.(line, reason);
  };
  const store = async (line: number, connection: ImportedConnection) => {
    try {
      const existing = await deps.prisma.connection.findUnique({
        where: {
          integrationId_externalId: {
            integrationId: integration.id,
            externalId: connection.externalId,
          },
        },
      });
      if (existing && holdsAlready(deps, existing, connection)) {
        summary.unchanged += 1;
      } else if (options.dryRun) {
        summary[existing ? "updated" : "created"] += 1;
      } else {
        const { created } = await registerConnection(deps, {
          ...connection,
          integration: integration.key,
        });
        summary[created ? "created" : "updated"] += 1;
      }
    } catch (error) {
      // The name only: a database error's message may quote the values it was given.
      fail(line, `not stored (${errorName(error)})`);
    }
  };

  const inFlight = new Set<Promise<void>>();
  let lineNumber = 0;
  // Created only now: readline starts the stream flowing, and lines it emitted before the
  // loop below were listening would be lost.
  const lines = createInterface({ input: options.input, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const text of lines) {
    lineNumber += 1;
    if (text.trim() === "") continue;
    summary.lines += 1;
    const parsed = parseImportLine(text, options.fernetKey);
    if (parsed.ok) {
      const task: Promise<void> = store(lineNumber, parsed.connection).finally(() =>
        inFlight.delete(task),
      );
      inFlight.add(task);
      // Reading waits while the pool is full, so memory stays bounded whatever the file's size.
      if (inFlight.size >= concurrency) await Promise.race(inFlight);
    } else {
      fail(lineNumber, parsed.reason);
    }
    if (summary.lines % progressEvery === 0) options.onProgress?.({ ...summary });
  }
  await Promise.all(inFlight);
  options.onProgress?.({ ...summary });
  return summary;
}

function holdsAlready(
  { keyRing }: RegistrationDeps,
  stored: Connection,
  line: ImportedConnection,
): boolean {
  return (
    stored.status === "active" &&
    stored.refreshToken !== null &&
    openRefreshToken(keyRing, stored.id, stored.refreshToken) === line.refreshToken &&
    openAccessToken(keyRing, stored.id, stored.accessToken) === line.accessToken &&
    stored.scope === (line.scope ?? null) &&
    (line.metadata === undefined || isDeepStrictEqual(stored.metadata, line.metadata))
  );
}

function errorName(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${error.name} ${code}` : error.name;
  }
  return "unknown error";
}
