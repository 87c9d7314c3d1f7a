import { describe, expect, it } from "vitest";
import { backoffMs, parseRetryAfter } from "./retry-after";

const now = new Date("2026-03-01T12:00:00.000Z");
const HOUR = 3_600_000;

describe("parseRetryAfter", () => {
  it("reads delay-seconds", () => {
    expect(parseRetryAfter("2", now, HOUR)).toBe(2000);
    expect(parseRetryAfter(" 0 ", now, HOUR)).toBe(0);
    expect(parseRetryAfter("1.5", now, HOUR)).toBe(1500);
  });

  it("reads an IMF-fixdate relative to now", () => {
    expect(parseRetryAfter("Sun, 01 Mar 2026 12:00:30 GMT", now, HOUR)).toBe(30_000);
  });

  it("reads the obsolete RFC 850 and asctime forms as GMT", () => {
    expect(parseRetryAfter("Sunday, 01-Mar-26 12:01:00 GMT", now, HOUR)).toBe(60_000);
    expect(parseRetryAfter("Sun Mar  1 12:00:10 2026", now, HOUR)).toBe(10_000);
  });

  it("gives 0 for a date in the past", () => {
    expect(parseRetryAfter("Sat, 28 Feb 2026 12:00:00 GMT", now, HOUR)).toBe(0);
  });

  it("caps long waits", () => {
    expect(parseRetryAfter("999999999999", now, HOUR)).toBe(HOUR);
    expect(parseRetryAfter("Wed, 01 Mar 2028 12:00:00 GMT", now, HOUR)).toBe(HOUR);
    expect(parseRetryAfter("120", now, 60_000)).toBe(60_000);
  });

  it("gives null when absent or unreadable", () => {
    for (const value of [
      undefined,
      "",
      "  ",
      "soon",
      "-5",
      "1e3",
      "2026-03-01T12:00:30Z",
      "0x10",
    ]) {
      expect(parseRetryAfter(value, now, HOUR)).toBeNull();
    }
    expect(parseRetryAfter("Sun, 01 Foo 2026 12:00:30 GMT", now, HOUR)).toBeNull();
    expect(parseRetryAfter("Sun, 01 Mar 2026 25:00:30 GMT", now, HOUR)).toBeNull();
  });
});

describe("backoffMs", () => {
  const settings = { retryBaseDelayMs: 1_000, retryMaxDelayMs: 300_000 };
  it("doubles per failure between half and all of the step, up to the cap", () => {
    expect(backoffMs(settings, 1, () => 1)).toBe(1_000);
    expect(backoffMs(settings, 1, () => 0)).toBe(500);
    expect(backoffMs(settings, 4, () => 1)).toBe(8_000);
    expect(backoffMs(settings, 40, () => 1)).toBe(300_000);
    expect(backoffMs(settings, 40, () => 0)).toBe(150_000);
  });
});
