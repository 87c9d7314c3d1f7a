// npm run import -- --integration <key> [--fernet-key <key>] [--dry-run] <file.jsonl>
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { parseArgs } from "node:util";
import { loadConfigOrExit } from "@evergreen/config";
import { KeyRing } from "@evergreen/crypto";
import { createDatabase } from "@evergreen/db";
import { createLogger, errorName, tellFirstError } from "@evergreen/observability";
import { createRedis, redisTarget } from "@evergreen/redis";
import {
  FernetError,
  type ImportSummary,
  importConnections,
  parseFernetKey,
  RefreshLayout,
  RefreshQueues,
  UnknownIntegrationError,
} from "@evergreen/refresh";
import { importEnv } from "./env";

const USAGE =
  "usage: npm run import -- --integration <key> [--fernet-key <key>] [--dry-run]\n" +
  "         [--spread-seconds 3600] [--batch-size 500] [--concurrency 2] [--progress-every 1000]\n" +
  "         <file.jsonl>\n";

function exitWith(message: string): never {
  process.stderr.write(`import: ${message}\n`);
  process.exit(2);
}

/** Bounded: lines are held a batch at a time, and `concurrency` batches are in flight. */
const LIMITS = {
  "spread-seconds": 30 * 24 * 3600,
  "batch-size": 10_000,
  concurrency: 64,
  "progress-every": Number.MAX_SAFE_INTEGER,
} as const;

function positiveInt(name: keyof typeof LIMITS, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > LIMITS[name]) {
    exitWith(`--${name} must be an integer from 1 to ${LIMITS[name]}`);
  }
  return value;
}

/** The command line; an unknown option, or `--help`, exits 2 with the usage. */
function parseArguments() {
  if (process.argv.slice(2).some((arg) => arg === "--help" || arg === "-h")) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  try {
    return parseArgs({
      options: {
        integration: { type: "string" },
        "fernet-key": { type: "string" },
        "dry-run": { type: "boolean", default: false },
        "spread-seconds": { type: "string", default: "3600" },
        "batch-size": { type: "string", default: "500" },
        concurrency: { type: "string", default: "2" },
        "progress-every": { type: "string", default: "1000" },
      },
      allowPositionals: true,
    });
  } catch (error) {
    // Node's message names the option and says what is wrong with it.
    return exitWith(`${(error as Error).message}\n${USAGE.trimEnd()}`);
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArguments();
  const [file, ...extra] = positionals;
  if (!values.integration || !file || extra.length > 0)
    exitWith(`one integration and one file\n${USAGE}`);
  let fernetKey: ReturnType<typeof parseFernetKey> | undefined;
  try {
    fernetKey =
      values["fernet-key"] === undefined ? undefined : parseFernetKey(values["fernet-key"]);
  } catch (error) {
    // Its message names the format, never the key.
    if (error instanceof FernetError) exitWith(`--fernet-key: ${error.message}`);
    throw error;
  }
  const spreadSeconds = positiveInt("spread-seconds", values["spread-seconds"]);
  const batchSize = positiveInt("batch-size", values["batch-size"]);
  const concurrency = positiveInt("concurrency", values.concurrency);
  const progressEvery = positiveInt("progress-every", values["progress-every"]);
  const { size } = await stat(file).catch(() => exitWith("cannot read the file"));

  const { config, warnings } = loadConfigOrExit("import", importEnv, process.env, { exitCode: 3 });
  // Warnings only, on stderr: the operator watches progress, and stdout's JSON lines are for
  // programs (progress, the summary).
  const log = createLogger({ name: "import", level: "warn" }, process.stderr);
  for (const warning of warnings) log.warn(warning);
  // A connection per batch in flight, and one for the integration lookup.
  const database = createDatabase({ url: config.DATABASE_URL, poolSize: concurrency + 1 });
  const redis = createRedis(redisTarget(config), "producer", "evergreen-import");
  const queue = new RefreshQueues(redis, new RefreshLayout(config.REFRESH_QUEUE_SHARDS));
  // Redis away: the rows are stored and their jobs left to the sweep (logged per batch).
  tellFirstError("import", { redis, queue });

  const input = createReadStream(file);
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  const rate = (lines: number) => Math.round(lines / ((performance.now() - started) / 1000 || 1));
  const report = (summary: ImportSummary) => {
    const percent = size === 0 ? 100 : Math.floor((input.bytesRead / size) * 100);
    if (tty) {
      const bar = "#".repeat(Math.floor(percent / 4)).padEnd(25, ".");
      process.stderr.write(
        `\r[${bar}] ${percent}% ${summary.lines} lines, ${summary.failed} failed, ${rate(summary.lines)} lines/s`,
      );
    } else {
      process.stdout.write(`${JSON.stringify({ progress: { percent, ...summary } })}\n`);
    }
  };
  let summary: ImportSummary;
  try {
    summary = await importConnections(
      {
        prisma: database.prisma,
        keyRing: new KeyRing(config.ENCRYPTION_KEYS),
        queue,
        log,
        settings: {
          defaultBufferSeconds: config.REFRESH_BUFFER_SECONDS,
          retryBaseDelayMs: config.RETRY_BASE_DELAY_MS,
        },
        spreadWindowSeconds: spreadSeconds,
      },
      {
        integration: values.integration,
        input,
        fernetKey,
        dryRun: values["dry-run"],
        batchSize,
        concurrency,
        progressEvery,
        onProgress: report,
        onLineError: (line, reason) => {
          if (tty) process.stderr.write("\n");
          process.stderr.write(`line ${line}: ${reason}\n`);
        },
      },
    );
  } catch (error) {
    if (error instanceof UnknownIntegrationError)
      exitWith(`no integration with key "${error.key}"`);
    throw error;
  } finally {
    await queue.close();
    await redis.quit();
    await database.close();
  }
  if (tty) process.stderr.write("\n");
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `${JSON.stringify({ summary: { ...summary, dryRun: values["dry-run"], seconds: Number(seconds.toFixed(1)), linesPerSecond: rate(summary.lines) } })}\n`,
  );
  process.exitCode = summary.failed > 0 ? 1 : 0;
}

// Exit 3: the import could not run (PostgreSQL or Redis away), never 1 (lines refused).
await main().catch((error: unknown) => {
  process.stderr.write(`import: could not run (${errorName(error)})\n`);
  process.exitCode = 3;
});
