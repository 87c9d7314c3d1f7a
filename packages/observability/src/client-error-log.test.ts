import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ClientErrorLog } from "./client-error-log";
import { createLogger } from "./logger";

function setup() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      done();
    },
  });
  let now = 0;
  const errors = new ClientErrorLog(createLogger({ name: "test" }, stream), {
    windowMs: 30_000,
    now: () => now,
  });
  return { lines, errors, advance: (ms: number) => (now += ms) };
}

function refused(): Error {
  return Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), {
    code: "ECONNREFUSED",
  });
}

describe("ClientErrorLog", () => {
  it("logs one line per error code per window, then says how many it suppressed", () => {
    const { lines, errors, advance } = setup();
    const redis = new EventEmitter();
    const queue = new EventEmitter();
    errors.watch("redis", redis);
    errors.watch("queue", queue);

    for (let n = 0; n < 10; n += 1) {
      redis.emit("error", refused());
      queue.emit("error", refused());
      advance(1_000);
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "error",
      msg: "redis client error",
      client: "redis",
      code: "ECONNREFUSED",
      suppressed: 0,
      err: { message: "connect ECONNREFUSED 127.0.0.1:6379" },
    });

    advance(20_000);
    queue.emit("error", refused());
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ client: "queue", code: "ECONNREFUSED", suppressed: 19 });
  });

  it("keeps codes apart, and tells code-less errors apart by message", () => {
    const { lines, errors } = setup();
    const redis = new EventEmitter();
    errors.watch("redis", redis);
    redis.emit("error", refused());
    redis.emit("error", Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    redis.emit("error", new Error("Connection is closed."));
    redis.emit("error", new Error("Connection is closed."));
    expect(lines.map((line) => line.code ?? (line.err as { message: string }).message)).toEqual([
      "ECONNREFUSED",
      "ECONNRESET",
      "Connection is closed.",
    ]);
  });
});
