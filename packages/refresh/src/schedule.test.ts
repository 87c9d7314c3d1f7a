import { describe, expect, it } from "vitest";
import { computeNextRefreshAt } from "./schedule";

const issuedAt = new Date("2026-01-01T00:00:00Z");
const at = (seconds: number) => new Date(issuedAt.getTime() + seconds * 1000);

describe("computeNextRefreshAt", () => {
  it("refreshes a buffer before expiry, minus up to 10 % of the buffer", () => {
    const base = { expiresAt: at(3600), issuedAt, bufferSeconds: 300, minIntervalMs: 30_000 };
    expect(computeNextRefreshAt({ ...base, random: () => 0 })).toEqual(at(3300));
    expect(computeNextRefreshAt({ ...base, random: () => 0.999999 })?.getTime()).toBeCloseTo(
      at(3270).getTime(),
      -1,
    );
  });

  it("spreads an import over the window before the buffer", () => {
    const base = { expiresAt: at(7200), issuedAt, bufferSeconds: 300, minIntervalMs: 30_000 };
    const spread = (random: number) =>
      computeNextRefreshAt({ ...base, spreadWindowMs: 3_600_000, random: () => random });
    expect(spread(0)).toEqual(at(3300));
    expect(spread(0.5)).toEqual(at(5100));
    expect(spread(1)).toEqual(at(6900));
  });

  it("starts an import's window no sooner than the minimum interval, ending by half the buffer", () => {
    const base = { issuedAt, bufferSeconds: 300, minIntervalMs: 30_000, spreadWindowMs: 3_600_000 };
    // Expiring in 20 min: from 30 s to the buffer, whose start is after the window's end.
    expect(computeNextRefreshAt({ ...base, expiresAt: at(1200), random: () => 0 })).toEqual(at(30));
    expect(computeNextRefreshAt({ ...base, expiresAt: at(1200), random: () => 1 })).toEqual(
      at(1050),
    );
    // Expiring in 2 min (half the lifetime is the buffer): never past expiry minus half of it.
    expect(computeNextRefreshAt({ ...base, expiresAt: at(120), random: () => 1 })).toEqual(at(90));
  });

  it("uses half the lifetime as the buffer when the lifetime is under twice the buffer", () => {
    const next = computeNextRefreshAt({
      expiresAt: at(60),
      issuedAt,
      bufferSeconds: 300,
      minIntervalMs: 30_000,
      random: () => 0,
    });
    expect(next).toEqual(at(30));
  });

  it("never schedules sooner than the minimum interval after issue", () => {
    for (const expiresAt of [at(2), at(0), at(-3600)]) {
      const next = computeNextRefreshAt({
        expiresAt,
        issuedAt,
        bufferSeconds: 300,
        minIntervalMs: 30_000,
        random: () => 0,
      });
      expect(next).toEqual(at(30));
    }
  });

  it("schedules nothing for a token that never expires", () => {
    expect(
      computeNextRefreshAt({
        expiresAt: null,
        issuedAt,
        bufferSeconds: 300,
        minIntervalMs: 30_000,
      }),
    ).toBeNull();
  });

  it("spreads tokens issued together", () => {
    const times = new Set(
      Array.from({ length: 50 }, () =>
        computeNextRefreshAt({
          expiresAt: at(3600),
          issuedAt,
          bufferSeconds: 300,
          minIntervalMs: 30_000,
        })?.getTime(),
      ),
    );
    expect(times.size).toBeGreaterThan(40);
    for (const time of times) {
      expect(time).toBeGreaterThanOrEqual(at(3270).getTime());
      expect(time).toBeLessThanOrEqual(at(3300).getTime());
    }
  });
});
