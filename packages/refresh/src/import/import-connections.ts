import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { isDeepStrictEqual } from "node:util";
import type { KeyRing } from "@evergreen/crypto";
import {
  type RegistrationDeps,
  registerConnection,
  UnknownIntegrationError,
} from "../register-connection";
import { type BatchOutcome, registerConnectionBatch } from "../register-connection-batch";
import type { ExistingConnection } from "../registration-rules";
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
  /** Lines stored by one statement (registerConnectionBatch). @defaultValue 500 */
  readonly batchSize?: number | undefined;
  /** Batches being stored at once. @defaultValue 2 */
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
 * Imports connections from JSON lines, stored by the rules `POST /v1/connections` stores by
 * (sealed, upserted, evented, scheduled; pass a `spreadWindowSeconds` in `deps` so a bulk of
 * tokens expiring together does not refresh together), a batch of lines per statement
 * (registerConnectionBatch). A line whose connection already holds the same tokens, scope and
 * metadata is left alone, so re-running an import writes nothing: no new version, event or
 * schedule. Lines the batch leaves alone, and every line of a batch that failed, are stored
 * one by one by registerConnection, so an error is reported against its line.
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
  const batchSize = options.batchSize ?? 500;
  const concurrency = options.concurrency ?? 2;
  const progressEvery = options.progressEvery ?? 1000;
  const summary: ImportSummary = { lines: 0, created: 0, updated: 0, unchanged: 0, failed: 0 };

  const fail = (line: number, reason: string) => {
    summary.failed += 1;
    options.onLineError?.(line, reason);
  };
  const count = (outcome: Exclude<BatchOutcome, "single">) => {
    summary[outcome] += 1;
  };
  const storeOne = async ({ line, connection }: Numbered) => {
    try {
      const [outcome] = await registerConnectionBatch(deps, integration, [connection], {
        dryRun: options.dryRun,
        isUnchanged: holdsAlready(deps.keyRing),
      });
      if (outcome === "single") {
        const { created } = await registerConnection(deps, {
          ...connection,
          integration: integration.key,
        });
        count(created ? "created" : "updated");
      } else if (outcome) {
        count(outcome);
      }
    } catch (error) {
      // The name only: a database error's message may quote the values it was given.
      fail(line, `not stored (${errorName(error)})`);
    }
  };
  const storeBatch = async (batch: readonly Numbered[]) => {
    let outcomes: BatchOutcome[];
    try {
      outcomes = await registerConnectionBatch(
        deps,
        integration,
        batch.map((item) => item.connection),
        { dryRun: options.dryRun, isUnchanged: holdsAlready(deps.keyRing) },
      );
    } catch {
      // One line's value (or a deadlock with another writer) fails the whole statement:
      // line by line, each is stored or reported against its own number.
      for (const item of batch) await storeOne(item);
      return;
    }
    for (const [index, outcome] of outcomes.entries()) {
      const item = batch[index];
      if (outcome === "single" && item) await storeOne(item);
      else if (outcome !== "single") count(outcome);
    }
  };

  const inFlight = new Set<Promise<void>>();
  let batch: Numbered[] = [];
  const externalIds = new Set<string>();
  const flush = async () => {
    if (batch.length === 0) return;
    const task: Promise<void> = storeBatch(batch).finally(() => inFlight.delete(task));
    inFlight.add(task);
    batch = [];
    externalIds.clear();
    // Reading waits while the pool is full, so memory stays bounded whatever the file's size.
    if (inFlight.size >= concurrency) await Promise.race(inFlight);
  };
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
      // One statement cannot upsert a row twice: a repeated user starts the next batch, so
      // the later line wins, as it would stored line by line.
      if (externalIds.has(parsed.connection.externalId)) await flush();
      batch.push({ line: lineNumber, connection: parsed.connection });
      externalIds.add(parsed.connection.externalId);
      if (batch.length >= batchSize) await flush();
    } else {
      fail(lineNumber, parsed.reason);
    }
    if (summary.lines % progressEvery === 0) options.onProgress?.({ ...summary });
  }
  await flush();
  await Promise.all(inFlight);
  options.onProgress?.({ ...summary });
  return summary;
}

interface Numbered {
  readonly line: number;
  readonly connection: ImportedConnection;
}

/** A re-import of the tokens, scope and metadata an active connection holds is no change. */
const holdsAlready =
  (keyRing: KeyRing) =>
  (stored: ExistingConnection, line: ImportedConnection): boolean =>
    stored.status === "active" &&
    stored.refreshToken !== null &&
    openRefreshToken(keyRing, stored.id, stored.refreshToken) === line.refreshToken &&
    openAccessToken(keyRing, stored.id, stored.accessToken) === line.accessToken &&
    stored.scope === (line.scope ?? null) &&
    (line.metadata === undefined || isDeepStrictEqual(stored.metadata, line.metadata));

function errorName(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${error.name} ${code}` : error.name;
  }
  return "unknown error";
}
