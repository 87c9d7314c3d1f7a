import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export type AppName = "api" | "scheduler" | "worker";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface AppProcess {
  readonly child: ChildProcess;
  /** Parsed JSON log lines seen so far. */
  readonly logs: Record<string, unknown>[];
  /** Lines of stdout that are not JSON (npm's banner, a stray dump). */
  readonly otherStdout: string[];
  readonly stderr: () => string;
  /** Resolves with the first log line matching `predicate`, seen before or after the call. */
  waitForLog(
    predicate: (line: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>>;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

/** Node flags each app runs with, as its `npm run start:<name>` script gives them. */
export const NODE_FLAGS: Record<AppName, readonly string[]> = {
  api: [],
  scheduler: [],
  worker: ["--max-semi-space-size=64"],
};

/** Starts `apps/<name>/src/main.ts` in its own Node process (tsx loader, no wrapper). */
export function startApp(
  name: AppName,
  env: Record<string, string>,
  nodeFlags: readonly string[] = [],
): AppProcess {
  return startCommand(
    [
      process.execPath,
      ...NODE_FLAGS[name],
      ...nodeFlags,
      "--import",
      "tsx",
      `apps/${name}/src/main.ts`,
    ],
    env,
  );
}

/**
 * Runs `argv` in the repository root (as the image's working directory is), e.g. a compose
 * file's command or `npm run start:worker`, with only PATH and HOME of this environment.
 */
export function startCommand(argv: readonly string[], env: Record<string, string>): AppProcess {
  const [command = "", ...args] = argv;
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const otherStdout: string[] = [];
  const waiters: {
    predicate: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }[] = [];
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      otherStdout.push(text);
      return;
    }
    logs.push(line);
    for (const waiter of waiters.splice(0)) {
      if (waiter.predicate(line)) waiter.resolve(line);
      else waiters.push(waiter);
    }
  });
  // "close", not "exit": it fires once stdout is drained, so every log line has been read.
  const exited = once(child, "close").then(([code]) => code as number | null);
  return {
    child,
    logs,
    otherStdout,
    stderr: () => stderr,
    exited,
    waitForLog: (predicate) => {
      const seen = logs.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ predicate, resolve });
        exited.then((code) =>
          reject(
            new Error(`${argv.join(" ")} exited (${code}) before the awaited log line:\n${stderr}`),
          ),
        );
      });
    },
  };
}

/**
 * The port an app logged it listens on (`0` in the environment picks a free one): the
 * worker and scheduler log "ops server listening" with a port, the api Fastify's line.
 */
export async function listeningPort(app: AppProcess): Promise<number> {
  const line = await app.waitForLog(
    (entry) =>
      entry.msg === "ops server listening" || String(entry.msg).startsWith("Server listening at"),
  );
  if (typeof line.port === "number") return line.port;
  const match = /:(\d+)$/.exec(String(line.msg));
  if (!match?.[1]) throw new Error(`no port in ${JSON.stringify(line)}`);
  return Number(match[1]);
}
