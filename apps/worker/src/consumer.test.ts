import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, beforeEach, expect, it } from "vitest";
import { Consumer } from "./consumer";

// A Redis of its own (a unix socket in a temporary directory): the test fills it past
// maxmemory, which the shared one must never see.
let dir: string;
let server: ChildProcess;
let redis: Redis;
let consumerConnection: Redis;
let queue: Queue;
let consumer: Consumer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "evergreen-consumer-"));
  const socket = join(dir, "redis.sock");
  server = spawn(
    "redis-server",
    ["--port", "0", "--unixsocket", socket, "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  await new Promise<void>((resolve, reject) => {
    server.stdout?.on("data", (chunk) => {
      output += String(chunk);
      if (/ready to accept connections/i.test(output)) resolve();
    });
    server.once("exit", () => reject(new Error(`redis-server exited: ${output}`)));
  });
  redis = new Redis({ path: socket, maxRetriesPerRequest: 1 });
  consumerConnection = new Redis({ path: socket, maxRetriesPerRequest: null });
  queue = new Queue("consumer-test", { connection: redis });
  await queue.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: "job", data: { i } })));
});

afterEach(async () => {
  await consumer?.close();
  consumer = undefined;
  await queue.close();
  redis.disconnect();
  consumerConnection.disconnect();
  const exited = once(server, "exit");
  server.kill("SIGKILL");
  await exited;
  await rm(dir, { recursive: true, force: true });
});

/** Redis refuses every write (OOM) until `maxmemory` is lifted again. */
const fill = () => redis.config("SET", "maxmemory", "1");
const lift = () => redis.config("SET", "maxmemory", "0");

/** Scripts Redis refused or failed so far (INFO commandstats). */
async function refusedScripts(): Promise<number> {
  const stats = await redis.info("commandstats");
  const line = stats.split("\r\n").find((entry) => entry.startsWith("cmdstat_evalsha:"));
  const field = (name: string) => Number(line?.match(new RegExp(`${name}=(\\d+)`))?.[1] ?? 0);
  return field("rejected_calls") + field("failed_calls");
}

it("waits between fetches that Redis refuses, instead of spinning, and takes the jobs once it accepts", async () => {
  await fill();
  const done: number[] = [];
  const errors: Error[] = [];
  const c = new Consumer(
    "consumer-test",
    async (job) => {
      done.push((job.data as { i: number }).i);
    },
    { connection: consumerConnection, concurrency: 5, runRetryDelay: 500 },
  );
  consumer = c;
  const firstError = once(c, "error");
  c.on("error", (error) => errors.push(error));
  await firstError;
  expect(errors[0]?.message).toMatch(/^OOM/);
  const before = await refusedScripts();
  // BullMQ alone sends thousands of refused scripts in this window (one per turn of its
  // loop); waiting 500 ms after each, a consumer sends about four.
  await delay(2_000);
  expect((await refusedScripts()) - before).toBeLessThanOrEqual(8);

  const finished = new Promise<void>((resolve) => {
    c.on("completed", () => {
      if (done.length === 5) resolve();
    });
  });
  await lift();
  await finished;
  expect(done.sort()).toEqual([0, 1, 2, 3, 4]);
});

it("closes without sitting out the wait after a refusal", async () => {
  await fill();
  const c = new Consumer("consumer-test", async () => undefined, {
    connection: consumerConnection,
    runRetryDelay: 600_000,
  });
  await once(c, "error");
  // The test's own time limit is the check: close() would otherwise wait 10 minutes.
  await c.close();
});
