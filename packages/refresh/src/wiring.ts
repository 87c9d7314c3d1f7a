import type { KeyRing } from "@evergreen/crypto";
import type { Pool, PrismaClient } from "@evergreen/db";
import { type AllowlistEntry, EgressClient } from "@evergreen/egress";
import type { Logger, Metrics } from "@evergreen/observability";
import { type InsecureTokenUrls, PROVIDER_IDS } from "@evergreen/providers";
import { Cooldown, type RedisClient, RedisLock } from "@evergreen/redis";
import { ConnectionStore } from "./connection-store";
import { ParkedAnswers } from "./parked-answers";
import type { RefreshDeps, RefreshSettings } from "./refresh-connection";
import type { RefreshQueues } from "./refresh-queues";
import { SendMarks } from "./send-marks";
import type { ValidationDeps } from "./validate-connection";

/** The SPEC §4 variables every process that refreshes (worker, api) reads. */
export interface RefreshEnv {
  readonly NODE_ENV: "development" | "test" | "production";
  readonly REFRESH_TIMEOUT_MS: number;
  readonly REFRESH_BUFFER_SECONDS: number;
  readonly RETRY_BASE_DELAY_MS: number;
  readonly RETRY_MAX_DELAY_MS: number;
  readonly ALLOW_INSECURE_TOKEN_URLS: boolean;
  readonly EGRESS_ALLOWLIST: readonly AllowlistEntry[];
}

/**
 * ALLOW_INSECURE_TOKEN_URLS, plus one allowance outside production: `http://` to this
 * machine's loopback address, whose traffic never leaves the host. That is what lets
 * `npm start` and `npm run demo` work against a local mock provider with nothing set.
 */
function insecureTokenUrls(
  env: Pick<RefreshEnv, "NODE_ENV" | "ALLOW_INSECURE_TOKEN_URLS">,
): InsecureTokenUrls {
  if (env.ALLOW_INSECURE_TOKEN_URLS) return true;
  return env.NODE_ENV === "production" ? false : "loopback";
}

/**
 * The lease must outlive a refresh that runs into its HTTP timeout (and the store retries
 * after it); the worker gives BullMQ's job lock the same length, so a crashed worker's job
 * is handed on about when its lease ends.
 */
export function lockTtlMs(env: Pick<RefreshEnv, "REFRESH_TIMEOUT_MS">): number {
  return 3 * env.REFRESH_TIMEOUT_MS;
}

/**
 * The longest a refresh already in flight may take to finish: the token endpoint's timeout,
 * then the store's retries (about 3 s, see persistWithRetries) and parking an answer
 * PostgreSQL refused, with margin. Shutdown waits this long for in-flight refreshes, since
 * one cut between the provider's answer and the write loses a rotated refresh token.
 */
export function refreshDrainMs(env: Pick<RefreshEnv, "REFRESH_TIMEOUT_MS">): number {
  return env.REFRESH_TIMEOUT_MS + 15_000;
}

function refreshSettings(env: RefreshEnv): RefreshSettings {
  return {
    timeoutMs: env.REFRESH_TIMEOUT_MS,
    defaultBufferSeconds: env.REFRESH_BUFFER_SECONDS,
    retryBaseDelayMs: env.RETRY_BASE_DELAY_MS,
    retryMaxDelayMs: env.RETRY_MAX_DELAY_MS,
    allowInsecureTokenUrls: insecureTokenUrls(env),
  };
}

export interface RefreshParts {
  readonly env: RefreshEnv;
  /** The database pool (the refresh path writes SQL, not Prisma; see connection-store). */
  readonly pool: Pool;
  /** A producer connection: locks and cooldowns live next to the queue, in its shards. */
  readonly redis: RedisClient;
  readonly queue: RefreshQueues;
  readonly keyRing: KeyRing;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Token endpoint connections kept open per host. */
  readonly maxSockets: number;
}

/**
 * The egress client of a refreshing process. Loopback stays reachable outside production,
 * as `http://` to it does (see insecureTokenUrls): a local mock provider is how
 * `npm start`, the demo and the tests work.
 */
function egressClient(
  env: Pick<RefreshEnv, "NODE_ENV" | "EGRESS_ALLOWLIST">,
  maxSockets: number,
): EgressClient {
  return new EgressClient({
    allowlist: env.EGRESS_ALLOWLIST,
    allowLoopback: env.NODE_ENV !== "production",
    maxSockets,
  });
}

/** RefreshDeps as a process wires them: lock, cooldown and parked keys in the queue's shards, keep-alive HTTP. */
export function createRefreshDeps(parts: RefreshParts): RefreshDeps {
  const { layout } = parts.queue;
  // Every provider's series exists from the start, so that increase() sees the first stop.
  for (const provider of PROVIDER_IDS) parts.metrics.refreshStoppedInDoubt.inc({ provider }, 0);
  return {
    store: new ConnectionStore(parts.pool),
    keyRing: parts.keyRing,
    lock: new RedisLock(parts.redis, { prefix: layout.keys("lock"), ttlMs: lockTtlMs(parts.env) }),
    cooldown: new Cooldown(parts.redis, layout.keys("cooldown")),
    parked: new ParkedAnswers(parts.redis, layout.keys("parked")),
    marks: new SendMarks(parts.redis, layout.keys("sent")),
    queue: parts.queue,
    egress: egressClient(parts.env, parts.maxSockets),
    metrics: parts.metrics,
    log: parts.log,
    settings: refreshSettings(parts.env),
  };
}

/**
 * What validating tokens at the provider needs in a process that does not refresh (the
 * scheduler): the same egress rules and time limit as a refresh, since the request carries
 * an access token (and, for introspection, the client secret).
 */
export function createValidationDeps(parts: {
  readonly env: Pick<
    RefreshEnv,
    "NODE_ENV" | "REFRESH_TIMEOUT_MS" | "ALLOW_INSECURE_TOKEN_URLS" | "EGRESS_ALLOWLIST"
  >;
  readonly prisma: PrismaClient;
  readonly keyRing: KeyRing;
  readonly metrics: Metrics;
}): ValidationDeps {
  return {
    prisma: parts.prisma,
    keyRing: parts.keyRing,
    metrics: parts.metrics,
    // Few at once: the scheduler validates one connection at a time.
    egress: egressClient(parts.env, 4),
    settings: {
      timeoutMs: parts.env.REFRESH_TIMEOUT_MS,
      allowInsecureTokenUrls: insecureTokenUrls(parts.env),
    },
  };
}
