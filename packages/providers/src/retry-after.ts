const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DELTA_SECONDS = /^\d+(?:\.\d+)?$/;
// RFC 9110 §5.6.7: IMF-fixdate, then the obsolete RFC 850 and asctime forms recipients
// must still accept. Parsed by hand: Date.parse takes almost anything ("1.5" is a date in
// V8) and reads asctime as local time.
const IMF_FIXDATE = /^[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850_DATE = /^[A-Za-z]+, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME_DATE = /^[A-Za-z]{3} ([A-Za-z]{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/**
 * Reads a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns
 * milliseconds from `now`, at most `capMs`; a date in the past gives 0; absent or
 * unreadable gives null. Fractional seconds are accepted because some providers send them.
 */
export function parseRetryAfter(
  value: string | undefined,
  now: Date,
  capMs: number,
): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (text === "") return null;
  if (DELTA_SECONDS.test(text)) return clamp(Number(text) * 1000, capMs);
  const at = parseHttpDate(text, now);
  return at === null ? null : clamp(at - now.getTime(), capMs);
}

/** Seconds as a number or numeric string (JSON `retry_after`, Discord) to capped ms. */
export function secondsToRetryMs(value: unknown, capMs: number): number | null {
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) {
    return clamp(value * 1000, capMs);
  }
  if (typeof value === "string" && DELTA_SECONDS.test(value.trim())) {
    return clamp(Number(value.trim()) * 1000, capMs);
  }
  return null;
}

function clamp(ms: number, capMs: number): number {
  if (!Number.isFinite(ms)) return capMs;
  return Math.min(Math.max(Math.ceil(ms), 0), capMs);
}

function parseHttpDate(text: string, now: Date): number | null {
  let match = IMF_FIXDATE.exec(text);
  if (match !== null) {
    const [, day, month, year, hour, minute, second] = match;
    return utc(year, month, day, hour, minute, second);
  }
  match = RFC850_DATE.exec(text);
  if (match !== null) {
    const [, day, month, shortYear, hour, minute, second] = match;
    // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
    const yy = Number(shortYear);
    const century = 2000 + yy > now.getUTCFullYear() + 50 ? 1900 : 2000;
    return utc(String(century + yy), month, day, hour, minute, second);
  }
  match = ASCTIME_DATE.exec(text);
  if (match !== null) {
    const [, month, day, hour, minute, second, year] = match;
    return utc(year, month, day, hour, minute, second);
  }
  return null;
}

function utc(
  year: string | undefined,
  month: string | undefined,
  day: string | undefined,
  hour: string | undefined,
  minute: string | undefined,
  second: string | undefined,
): number | null {
  const monthIndex = MONTHS.indexOf(month ?? "");
  if (monthIndex < 0) return null;
  const parts = [year, day, hour, minute, second].map(Number);
  const [y = Number.NaN, d = Number.NaN, h = Number.NaN, mi = Number.NaN, s = Number.NaN] = parts;
  if (d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return null;
  const ms = Date.UTC(y, monthIndex, d, h, mi, s);
  return Number.isNaN(ms) ? null : ms;
}

/**
 * Exponential backoff with jitter: base·2^(n-1), capped, then scaled by 50–100 %. The one
 * rule for every retry (refreshes, revocations, webhook deliveries); `Retry-After` bounds
 * it from below where an answer carries one.
 */
export function backoffMs(
  settings: { readonly retryBaseDelayMs: number; readonly retryMaxDelayMs: number },
  failures: number,
  random: () => number = Math.random,
): number {
  const exponential = settings.retryBaseDelayMs * 2 ** Math.min(Math.max(failures - 1, 0), 30);
  const capped = Math.min(settings.retryMaxDelayMs, exponential);
  return Math.round(capped * (0.5 + random() * 0.5));
}
