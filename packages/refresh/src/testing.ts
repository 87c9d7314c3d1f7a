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
import {
  type ClusterNode,
  Cooldown,
  createRedis,
  type RedisClient,
  RedisLock,
} from "@evergreen/redis";
import {
  type ConnectionChange,
  type ConnectionEventInput,
  ConnectionStore,
} from "./connection-store";
import type { RefreshQueue } from "./jobs";
import { ParkedAnswers } from "./parked-answers";
import type { RefreshDeps, RefreshSettings } from "./refresh-connection";
import { RefreshQueues } from "./refresh-queues";
import { SendMarks } from "./send-marks";
import { RefreshLayout } from "./shards";
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
      appValues: null,
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

/**
 * `prisma` whose `model.findUnique` runs `change` right after its read, before answering:
 * a concurrent writer that slips in between a read and the transaction that follows it.
 * The model offers only findUnique; what the code under test calls on it besides is absent.
 */
export function changedAfterRead(
  prisma: PrismaClient,
  model: "connection" | "integration",
  change: () => Promise<unknown>,
): PrismaClient {
  return new Proxy(prisma, {
    get(target, name, receiver) {
      if (name !== model) return Reflect.get(target, name, receiver);
      const delegate = target[model] as unknown as { findUnique(args: unknown): Promise<unknown> };
      return {
        findUnique: async (args: unknown) => {
          const row = await delegate.findUnique(args);
          await change();
          return row;
        },
      };
    },
  });
}

export function redisDatabaseUrl(index: number): string {
  return `${TEST_REDIS_URL.replace(/\/\d*$/, "")}/${index}`;
}

export interface RefreshHarness {
  readonly db: TestDatabase;
  readonly prisma: PrismaClient;
  readonly redis: RedisClient;
  readonly keyRing: KeyRing;
  /** `ENCRYPTION_KEYS` value of `keyRing`, for child processes. */
  readonly encryptionKeys: string;
  readonly provider: MockProvider;
  /** Every shard's queue, as the processes use them. */
  readonly queues: RefreshQueues;
  /** Shard 0's queue: the whole queue with one shard (the default). */
  readonly queue: RefreshQueue;
  /** Redis prefix of this harness's queue, locks and cooldowns (shard 0's with several). */
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
  /** Redis prefix of queue, locks and cooldowns, `{name}`. @defaultValue a random one */
  readonly prefix?: string;
  /** REFRESH_QUEUE_SHARDS. @defaultValue 1 */
  readonly shards?: number;
  /** REDIS_CLUSTER_NODES: a Redis Cluster instead of `redisUrl`. */
  readonly clusterNodes?: readonly ClusterNode[];
}

export async function createRefreshHarness(settings: HarnessOptions = {}): Promise<RefreshHarness> {
  const db = await createTestDatabase();
  const database = createDatabase({ url: db.url, poolSize: 5 });
  const { prisma } = database;
  const redis = createRedis(
    { url: settings.redisUrl ?? TEST_REDIS_URL, clusterNodes: settings.clusterNodes },
    "producer",
  );
  const encryptionKeys = generateEncryptionKey("test");
  const keyRing = KeyRing.fromSpec(encryptionKeys);
  const provider = await startMockProvider({ latencyMs: settings.latencyMs ?? 0 });
  const base =
    settings.prefix?.replace(/^\{(.*)\}$/, "$1") ?? `test-${randomBytes(4).toString("hex")}`;
  const layout = new RefreshLayout(settings.shards ?? 1, base);
  const queues = new RefreshQueues(redis, layout);
  const prefix = layout.prefixes[0] ?? "";
  const [queue] = queues.shards;
  if (!queue) throw new Error("no refresh queue shard");
  const metrics = createMetrics({ version: "test" });
  const deps: RefreshDeps = {
    store: new ConnectionStore(database.pool),
    keyRing,
    lock: new RedisLock(redis, { prefix: layout.keys("lock"), ttlMs: 30_000 }),
    cooldown: new Cooldown(redis, layout.keys("cooldown")),
    parked: new ParkedAnswers(redis, layout.keys("parked")),
    marks: new SendMarks(redis, layout.keys("sent")),
    queue: queues,
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
    queues,
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
      await Promise.all(queues.shards.map((shard) => shard.obliterate({ force: true })));
      await queues.close();
      // Every layout of this base (`{base}`, `{base-3.0}`, ...). A cluster answers KEYS per
      // node; a key is deleted on whichever node holds it.
      const nodes = "nodes" in redis ? redis.nodes("master") : [redis];
      for (const node of nodes) {
        const keys = await node.keys(`{${base}*`);
        await Promise.all(keys.map((key) => redis.del(key)));
      }
      await redis.quit();
      deps.egress.close();
      await provider.close();
      await database.close();
      await db.drop();
    },
  };
}
