import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { errorName, tellFirstError } from "./error-name";

const replyError = (message: string) => Object.assign(new Error(message), { name: "ReplyError" });

describe("errorName", () => {
  it("names an error by its name and code, never its message", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.7:6379"), {
      code: "ECONNREFUSED",
    });
    expect(errorName(refused)).toBe("Error ECONNREFUSED");
    expect(errorName(new TypeError("postgres://user:secret@db/x"))).toBe("TypeError");
    expect(errorName("not an error")).toBe("unknown error");
  });

  it("gives a Redis error reply's code, the word it starts with", () => {
    expect(errorName(replyError("WRONGPASS invalid username-password pair"))).toBe(
      "ReplyError WRONGPASS",
    );
    expect(errorName(replyError("ERR value is not an integer"))).toBe("ReplyError ERR");
    expect(errorName(replyError("something lowercase"))).toBe("ReplyError");
  });
});

describe("tellFirstError", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("tells each source's first error once, by name", () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    const redis = new EventEmitter();
    const queue = new EventEmitter();
    tellFirstError("keys", { redis, queue });
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      code: "ECONNREFUSED",
    });
    redis.emit("error", refused);
    redis.emit("error", refused);
    queue.emit("error", replyError("NOAUTH Authentication required."));
    expect(written).toEqual([
      "keys: redis: Error ECONNREFUSED\n",
      "keys: queue: ReplyError NOAUTH\n",
    ]);
  });
});
