import { KeySpecError, parseEncryptionKeys } from "@evergreen/crypto";
import { parseEgressAllowlist } from "@evergreen/egress";
import { z } from "zod";
// Imported, not read from disk at run time, so that a bundle carries it too.
import rootPackage from "../../../package.json" with { type: "json" };
import { parseApiKeys } from "./api-keys";

/**
 * One zod field per environment variable of SPEC §4. Each app's `src/env.ts` picks the
 * ones it reads, so a variable means the same thing, with the same default, everywhere.
 */

const booleanString = z
  .enum(["true", "false", "1", "0"], { message: "must be true or false" })
  .transform((value) => value === "true" || value === "1");

/**
 * A whole number from the environment, parsed here rather than with `z.coerce`: coercing
 * "abc" gives NaN, which zod reported like a missing variable ("is required"). Digits only,
 * so "1e3", "0x10" and "12abc" are refused too. The message shows the value, since no
 * numeric variable holds a secret.
 */
const integer = (what: string, min: number, max: number, fallback: number) =>
  z
    .string()
    .transform((raw, ctx) => {
      const value = raw.trim();
      const number = Number(value);
      if (!/^\d+$/.test(value) || number < min || number > max) {
        ctx.addIssue({ code: "custom", message: `must be ${what}, got ${JSON.stringify(raw)}` });
        return z.NEVER;
      }
      return number;
    })
    .default(fallback);

/**
 * Durations and sizes are bounded where a larger value would break the process, not
 * merely be odd: Node's timers hold at most 2^31 - 1 ms (24.8 days) and fire at once
 * beyond it (a sweep every millisecond, an egress timeout that aborts every request), and
 * a timeout also sets the lock's TTL (3x) and the drain at shutdown.
 */
const bounded = (unit: string, max: number, fallback: number) =>
  integer(`${unit} (1-${max})`, 1, max, fallback);

const port = (fallback: number) => integer("a port number (0-65535)", 0, 65535, fallback);

export const nodeEnv = z.enum(["development", "test", "production"]).default("development");

/**
 * A connection URL the clients can parse. The scheme alone let `host:notaport` through:
 * ioredis then crashed at start with a stack trace that printed the URL, password
 * included, and Prisma failed every query with a 500. The message never shows the value,
 * which may hold a password.
 */
const connectionUrl = (scheme: RegExp, what: string, fallback: string) =>
  z
    .string()
    .refine((url) => scheme.test(url) && URL.canParse(url), `must be a valid ${what} URL`)
    .default(fallback);

export const databaseUrl = connectionUrl(
  /^postgres(ql)?:\/\//,
  "postgresql://",
  "postgresql://postgres@127.0.0.1:5432/evergreen",
);

export const redisUrl = connectionUrl(
  /^rediss?:\/\//,
  "redis:// or rediss://",
  "redis://127.0.0.1:6379",
);

/**
 * REDIS_CLUSTER_NODES: `host:port,host:port` seed nodes of a Redis Cluster (the client finds
 * the rest). Unset or blank, REDIS_URL is a single Redis. No credentials here: a cluster
 * takes its password and TLS from REDIS_URL, so this list can be shown in logs.
 */
export const redisClusterNodes = z
  .string()
  .optional()
  .transform((spec, ctx) => {
    const entries = (spec ?? "")
      .split(",")
      .map((entry) => entry.trim())
      .filter((entry) => entry !== "");
    const nodes: { host: string; port: number }[] = [];
    for (const entry of entries) {
      const match = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(entry);
      const port = Number(match?.[2]);
      if (!match?.[1] || port < 1 || port > 65535) {
        ctx.addIssue({
          code: "custom",
          message: `must be a comma list of host:port, got ${JSON.stringify(entry)}`,
        });
        continue;
      }
      nodes.push({ host: match[1].replace(/^\[(.*)\]$/, "$1"), port });
    }
    return nodes.length > 0 ? nodes : undefined;
  });

export const encryptionKeys = z.string().transform((spec, ctx) => {
  try {
    return parseEncryptionKeys(spec);
  } catch (error) {
    const problems = error instanceof KeySpecError ? error.problems : [(error as Error).message];
    for (const message of problems) ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  }
});

/** SPEC §4: bare keys (all scopes) or `name:key:scope+scope`; see api-keys.ts. */
export const apiKeys = z.string().transform((spec, ctx) => {
  const { keys, problems } = parseApiKeys(spec);
  for (const message of problems) ctx.addIssue({ code: "custom", message });
  return problems.length === 0 ? keys : z.NEVER;
});

export const logLevel = z
  .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
  .default("info");

/**
 * SPEC §4: where the audit stream goes, `stdout` or a file path (a blank value is unset, so
 * `stdout`). Whether the file can be opened is found when the api opens it at start.
 */
/** `stdout` in any case (`STDOUT` made a file of that name), else a file path. */
export const auditLog = z
  .string()
  .trim()
  .default("stdout")
  .transform((value) => (value.toLowerCase() === "stdout" ? "stdout" : value));

export const apiPort = port(3000);
export const workerMetricsPort = port(9464);
export const schedulerMetricsPort = port(9465);
export const refreshBufferSeconds = bounded("a number of seconds", 2_592_000, 300);
export const reconcileIntervalSeconds = bounded("a number of seconds", 86_400, 60);
// Bounded: a "keep forever" value such as 9999999 days would put the prune's cutoff before
// the earliest timestamp PostgreSQL has, and every prune would fail.
export const eventRetentionDays = integer("a number of days (1-36500)", 1, 36_500, 30);
/** How long before a refresh token's stated end `connection.reauth_soon` is sent. */
export const reauthSoonDays = integer("a number of days (1-365)", 1, 365, 7);
export const workerConcurrency = bounded("a number of jobs", 10_000, 50);
/** SPEC §4: hash-tagged refresh queues; a cluster spreads them over its primaries (ADR 0017). */
export const refreshQueueShards = integer("a number of shards (1-256)", 1, 256, 1);
export const refreshTimeoutMs = bounded("a number of milliseconds", 600_000, 10_000);
export const retryBaseDelayMs = bounded("a number of milliseconds", 86_400_000, 1_000);
export const retryMaxDelayMs = bounded("a number of milliseconds", 86_400_000, 300_000);

/**
 * For a refinement across fields (`when` of `.refine`): run it once these fields parsed,
 * whatever else is wrong. By default zod skips an object's refinements after any field's
 * issue, so a cross-field problem was reported only once every other had been fixed, where
 * SPEC §4 asks for one message per problem.
 */
export function whenParsed(...names: string[]) {
  return (payload: { readonly issues: readonly { readonly path?: readonly PropertyKey[] }[] }) =>
    // An issue without a path is the whole input's (not an object): nothing to compare.
    !payload.issues.some(({ path }) => !path?.length || names.includes(String(path[0])));
}

type RetryDelays = { readonly RETRY_BASE_DELAY_MS: number; readonly RETRY_MAX_DELAY_MS: number };

/**
 * For an app's schema, `.refine(...retryDelaysInOrder)`: backoff starts at
 * RETRY_BASE_DELAY_MS and grows up to RETRY_MAX_DELAY_MS (checked once both parsed).
 */
export const retryDelaysInOrder: [
  (env: RetryDelays) => boolean,
  Exclude<Parameters<z.ZodType["refine"]>[1], string | undefined>,
] = [
  (env) => env.RETRY_BASE_DELAY_MS <= env.RETRY_MAX_DELAY_MS,
  {
    path: ["RETRY_BASE_DELAY_MS"],
    error: (issue) => {
      const env = issue.input as RetryDelays;
      return `must not exceed RETRY_MAX_DELAY_MS (${env.RETRY_BASE_DELAY_MS} > ${env.RETRY_MAX_DELAY_MS})`;
    },
    when: whenParsed("RETRY_BASE_DELAY_MS", "RETRY_MAX_DELAY_MS"),
  },
];
export const allowInsecureTokenUrls = booleanString.default(false);

/**
 * The base URL at which users' browsers reach the api (SPEC §4): http(s), a host, maybe a
 * path (behind a proxy), never credentials, a query or a fragment, since the connect flow's
 * redirect URI is this URL followed by `/oauth/callback`. A trailing slash is dropped.
 * Unset, the app supplies its own default (the api's loopback address).
 */
export const publicUrl = z
  .string()
  .transform((raw, ctx) => {
    const value = raw.trim();
    const url = URL.canParse(value) ? new URL(value) : null;
    if (
      url === null ||
      (url.protocol !== "https:" && url.protocol !== "http:") ||
      url.username !== "" ||
      url.password !== "" ||
      url.search !== "" ||
      url.hash !== "" ||
      /[?#]/.test(value)
    ) {
      // A value holding credentials is not repeated, parsed or not: it would put them in
      // the log.
      const got =
        (url !== null && (url.username !== "" || url.password !== "")) || /\/\/[^/]*@/.test(value)
          ? "got one with credentials"
          : `got ${JSON.stringify(raw)}`;
      ctx.addIssue({
        code: "custom",
        message: `must be an http(s) URL without credentials, query or fragment, ${got}`,
      });
      return z.NEVER;
    }
    return url.toString().replace(/\/+$/, "");
  })
  .optional();

/** Hosts, `host:port` and CIDRs outbound calls may reach although internal (SPEC §2). */
export const egressAllowlist = z
  .string()
  .default("")
  .transform((spec, ctx) => {
    // Entry by entry, so that every bad entry is named, not only the first.
    const problems: string[] = [];
    const entries = spec.split(",").flatMap((entry) => {
      try {
        return parseEgressAllowlist(entry);
      } catch (error) {
        problems.push((error as Error).message);
        return [];
      }
    });
    for (const message of problems) ctx.addIssue({ code: "custom", message });
    return problems.length === 0 ? entries : z.NEVER;
  });

/**
 * EVERGREEN_VERSION (the image's build argument), else the repository's version: the
 * `version` label of `evergreen_build_info`. A label value, so held to a short version-like
 * word.
 */
export const evergreenVersion = z
  .string()
  .regex(
    /^[\w.+-]{1,64}$/,
    "must be a version such as 1.2.3 or a commit id (1-64 of A-Z a-z 0-9 . _ + -)",
  )
  .default(rootPackage.version);
