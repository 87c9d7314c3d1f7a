// Test harness: a migrated database, a private Redis key space and a mock provider, wired
// into RefreshDeps the way the worker wires them.
import { randomBytes } from "node:crypto";
import { generateEncryptionKey, KeyRing } from "@evergreen/crypto";
import { type Connection, createDatabase, type PrismaClient } from "@evergreen/db";
import { createTestDatabase, type TestDatabase } from "@evergreen/db/testing";
import { EgressClient } from "@evergreen/egress";
import { createLogger, createMetrics, type Metrics } from "@evergreen/observability";
import type { ProviderId } from "@evergreen/providers";
import {
  type GrantOptions,
  type IssuedGrant,
  type MockProvider,
  startMockProvider,
} from "@evergreen/providers/testing";
import { Cooldown, createRedis, RedisLock } from "@evergreen/redis";
import type { Redis } from "ioredis";
import {
  type ConnectionChange,
  type ConnectionEventInput,
  ConnectionStore,
} from "./connection-store";
import { createRefreshQueue, type RefreshQueue } from "./jobs";
import { ParkedAnswers } from "./parked-answers";
import type { RefreshDeps, RefreshSettings } from "./refresh-connection";
import { sealAccessToken, sealClientSecret, sealRefreshToken } from "./token-cipher";

export const TEST_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * TEST_REDIS_URL on Redis database `index`: for suites whose processes use the production
 * queue prefix and so need a database of their own.
 */
/**
 * What a successful refresh of `row` writes: the next version, the same sealed tokens, an
 * hour's validity. For tests that park or write an answer by hand.
 */
export function successfulRefresh(
  row: Connection,
  overrides: Partial<ConnectionChange> = {},
): { change: ConnectionChange; event: ConnectionEventInput } {
  return {
    change: {
      accessToken: row.accessToken,
      refreshToken: row.refreshToken,
      tokenType: row.tokenType,
      scope: row.scope,
      expiresAt: new Date(Date.now() + 3_600_000),
      refreshTokenExpiresAt: row.refreshTokenExpiresAt,
      status: "active",
      version: row.version + 1,
      nextRefreshAt: null,
      lastRefreshedAt: new Date(),
      refreshCount: row.refreshCount + 1,
      consecutiveFailures: 0,
      consecutiveUnknown: 0,
      lastErrorCode: null,
      lastErrorMessage: null,
      lastErrorAt: null,
      inDoubtSince: null,
      inDoubtResent: false,
      ...overrides,
    },
    event: { type: "refreshed", outcome: "success", errorCode: null, message: null },
  };
}

/** The value of one series of a counter or gauge, 0 when it has none yet. */
export async function metricValue(
  metric: { get(): Promise<{ values: { value: number; labels: object }[] }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await metric.get();
  const series = values.find(({ labels: own }) =>
    Object.entries(labels).every(
      ([name, value]) => (own as Record<string, unknown>)[name] === value,
    ),
  );
  return series?.value ?? 0;
}

export function redisDatabaseUrl(index: number): string {
  return `${TEST_REDIS_URL.replace(/\/\d*$/, "")}/${index}`;
}

export interface RefreshHarness {
  readonly db: TestDatabase;
  readonly prisma: PrismaClient;
  readonly redis: Redis;
  readonly keyRing: KeyRing;
  /** `ENCRYPTION_KEYS` value of `keyRing`, for child processes. */
  readonly encryptionKeys: string;
  readonly provider: MockProvider;
  readonly queue: RefreshQueue;
  /** Redis prefix of this harness's queue, locks and cooldowns. */
  readonly prefix: string;
  readonly metrics: Metrics;
  readonly deps: RefreshDeps;
  /** Creates an integration against the mock provider (once) and a connection on a new grant. */
  addConnection(
    options?: ConnectionOptions,
  ): Promise<{ connection: Connection; grant: IssuedGrant }>;
  close(): Promise<void>;
}

export interface ConnectionOptions extends GrantOptions {
  /** Seconds until the stored access token expires; negative for an expired one. @defaultValue 3600 */
  readonly expiresInSeconds?: number;
  readonly integrationKey?: string;
  /**
   * The integration's provider definition, its token URL pointed at the mock (so that a
   * catalog provider's rotation and reuse grace apply). @defaultValue "oauth2"
   */
  readonly provider?: ProviderId;
}

export interface HarnessOptions extends Partial<RefreshSettings> {
  readonly latencyMs?: number;
  /** @defaultValue TEST_REDIS_URL */
  readonly redisUrl?: string;
  /** Redis prefix of queue, locks and cooldowns. @defaultValue a random one */
  readonly prefix?: string;
}

export async function createRefreshHarness(settings: HarnessOptions = {}): Promise<RefreshHarness> {
  const db = await createTestDatabase();
  const database = createDatabase({ url: db.url, poolSize: 5 });
  const { prisma } = database;
  const redis = createRedis(settings.redisUrl ?? TEST_REDIS_URL, "producer");
  const encryptionKeys = generateEncryptionKey("test");
  const keyRing = KeyRing.fromSpec(encryptionKeys);
  const provider = await startMockProvider({ latencyMs: settings.latencyMs ?? 0 });
  const prefix = settings.prefix ?? `{test-${randomBytes(4).toString("hex")}}`;
  const queue = createRefreshQueue(redis, prefix);
  const metrics = createMetrics("test", { version: "test" });
  const deps: RefreshDeps = {
    store: new ConnectionStore(database.pool),
    keyRing,
    lock: new RedisLock(redis, { prefix: `${prefix}:lock:`, ttlMs: 30_000 }),
    cooldown: new Cooldown(redis, `${prefix}:cooldown:`),
    parked: new ParkedAnswers(redis, `${prefix}:parked:`),
    queue,
    // Loopback allowed, as outside production: the mock provider listens on 127.0.0.1.
    egress: new EgressClient({ allowLoopback: true }),
    metrics,
    log: createLogger({ name: "test", level: "silent" }),
    settings: {
      timeoutMs: settings.timeoutMs ?? 2_000,
      defaultBufferSeconds: settings.defaultBufferSeconds ?? 300,
      retryBaseDelayMs: settings.retryBaseDelayMs ?? 1_000,
      retryMaxDelayMs: settings.retryMaxDelayMs ?? 300_000,
      allowInsecureTokenUrls: true,
      ...(settings.unknownRetryLimit ? { unknownRetryLimit: settings.unknownRetryLimit } : {}),
    },
  };
  // Promises, not ids: connections added in parallel share one integration row.
  const integrations = new Map<string, Promise<string>>();

  function integrationId(key: string, providerId: ProviderId): Promise<string> {
    const known = integrations.get(key);
    if (known) return known;
    const created = createIntegration(key, providerId);
    integrations.set(key, created);
    return created;
  }

  async function createIntegration(key: string, providerId: ProviderId): Promise<string> {
    const id = crypto.randomUUID();
    await prisma.integration.create({
      data: {
        id,
        key,
        provider: providerId,
        clientId: provider.clientId,
        clientSecret: sealClientSecret(keyRing, id, provider.clientSecret),
        tokenUrl: provider.tokenUrl,
      },
    });
    return id;
  }

  return {
    db,
    prisma,
    redis,
    keyRing,
    encryptionKeys,
    provider,
    queue,
    prefix,
    metrics,
    deps,
    async addConnection(options = {}) {
      const grant = provider.issueGrant(options);
      const id = crypto.randomUUID();
      const connection = await prisma.connection.create({
        data: {
          id,
          integrationId: await integrationId(
            options.integrationKey ?? (options.provider ? `mock-${options.provider}` : "mock"),
            options.provider ?? "oauth2",
          ),
          externalId: `user-${id}`,
          accessToken: sealAccessToken(keyRing, id, grant.accessToken),
          refreshToken: sealRefreshToken(keyRing, id, grant.refreshToken),
          expiresAt: new Date(Date.now() + (options.expiresInSeconds ?? 3600) * 1000),
        },
      });
      return { connection, grant };
    },
    async close() {
      await queue.obliterate({ force: true });
      await queue.close();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
      deps.egress.close();
      await provider.close();
      await database.close();
      await db.drop();
    },
  };
}
