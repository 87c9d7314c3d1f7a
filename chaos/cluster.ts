import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * The suite's own PostgreSQL and Redis, in one temporary directory, on their own ports:
 * killing them touches nothing else on the machine. PostgreSQL's tools refuse to run as
 * root, so as root they run as `postgres` (runuser), with the directory owned by it.
 */
export class PrivateCluster {
  private constructor(
    readonly dir: string,
    readonly postgres: PrivatePostgres,
    readonly redis: PrivateRedis,
  ) {}

  static async create(options: { pgBin: string; pgPort: number; redisPort: number }) {
    const dir = await mkdtemp(join(tmpdir(), "evergreen-chaos-"));
    try {
      if (isRoot()) await run("chown", ["postgres:postgres", dir]);
      const postgres = new PrivatePostgres(options.pgBin, dir, options.pgPort);
      await postgres.init();
      await postgres.start();
      const redis = new PrivateRedis(join(dir, "redis"), options.redisPort);
      await redis.start();
      return new PrivateCluster(dir, postgres, redis);
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Stops both servers and removes the directory; safe to call after any failure. */
  async destroy(): Promise<void> {
    await this.redis.kill().catch(() => {});
    await this.postgres.stopImmediate().catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }
}

export class PrivatePostgres {
  readonly #data: string;
  #up = false;

  constructor(
    readonly bin: string,
    readonly dir: string,
    readonly port: number,
  ) {
    this.#data = join(dir, "pgdata");
  }

  get up(): boolean {
    return this.#up;
  }

  url(database: string): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async init(): Promise<void> {
    await asPostgres(join(this.bin, "initdb"), [
      "-D",
      this.#data,
      "-U",
      "postgres",
      "-A",
      "trust",
      "--no-sync",
    ]);
  }

  async start(): Promise<void> {
    // fsync off: the suite crashes PostgreSQL, never the machine, and the page cache
    // survives a crash of the server; synchronous_commit stays on, so a commit that was
    // acknowledged is never lost to `-m immediate`.
    const settings = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      "-c listen_addresses=127.0.0.1",
      "-c fsync=off",
      "-c full_page_writes=off",
      "-c max_connections=300",
    ].join(" ");
    const log = join(this.dir, "postgres.log");
    await asPostgres(join(this.bin, "pg_ctl"), [
      "-D",
      this.#data,
      "-l",
      log,
      "-w",
      "-t",
      "120",
      "-o",
      settings,
      "start",
    ]);
    this.#up = true;
  }

  /** Like a crash: no checkpoint, clients cut off; the next start recovers from WAL. */
  async stopImmediate(): Promise<void> {
    this.#up = false;
    await asPostgres(join(this.bin, "pg_ctl"), ["-D", this.#data, "-m", "immediate", "stop"]);
  }
}

export class PrivateRedis {
  #child: ChildProcess | null = null;

  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get up(): boolean {
    return this.#child !== null;
  }

  /**
   * Always with AOF (fsync every second): a kill keeps what the AOF holds, and a kill
   * "without AOF" is a kill followed by wipe(), as a Redis without persistence restarts empty.
   */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const child = spawn(
      "redis-server",
      [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--logfile",
        "",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout?.on("data", (chunk) => {
        output += String(chunk);
        if (output.includes("Ready to accept connections")) {
          output = "";
          resolve();
        } else if (output.length > 100_000) {
          output = output.slice(-1_000);
        }
      });
      child.once("exit", (code) => reject(new Error(`redis-server exited (${code}): ${output}`)));
    });
    this.#child = child;
    await ready;
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = null;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    }
  }

  /** Removes the data directory's contents (AOF and any dump). */
  async wipe(): Promise<void> {
    for (const entry of await readdir(this.dir)) {
      await rm(join(this.dir, entry), { recursive: true, force: true });
    }
  }
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

async function asPostgres(command: string, args: string[]): Promise<void> {
  const [file, argv] = isRoot()
    ? ["runuser", ["-u", "postgres", "--", command, ...args]]
    : [command, args];
  await run(file, argv, { cwd: "/" });
}

/** The newest PostgreSQL server binaries installed the Debian way. */
export async function findPostgresBin(): Promise<string> {
  const versions = (await readdir("/usr/lib/postgresql"))
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error("no PostgreSQL under /usr/lib/postgresql");
  return join("/usr/lib/postgresql", versions[0], "bin");
}
