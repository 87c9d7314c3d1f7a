import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { type ApiKey, grantsScope } from "@evergreen/config";
import type { Redis } from "ioredis";

/** A signed-in console user: the admin key's name, never the key. */
export interface AdminSession {
  /** The id the cookie carries (only its hash is stored). */
  readonly id: string;
  readonly keyName: string;
  /** The synchronizer token every form of this session carries (csrf.ts). */
  readonly csrfToken: string;
}

interface StoredSession {
  readonly keyName: string;
  /** SHA-256 of the key, to find it among the keys configured now. */
  readonly keyDigest: string;
  readonly csrfToken: string;
  /** Epoch ms; the session dies `maxAgeMs` after it, however active. */
  readonly createdAt: number;
}

export interface AdminSessionOptions {
  /** Key prefix in Redis. @defaultValue "evergreen:admin:session:" */
  readonly prefix?: string;
  /** Idle time after which a session dies. @defaultValue 1 hour */
  readonly idleMs?: number;
  /** Age at which a session dies, however active. @defaultValue 12 hours */
  readonly maxAgeMs?: number;
  /** @defaultValue Date.now */
  readonly now?: () => number;
}

/**
 * Console sessions in Redis (docs/adr: admin console). Server-side rather than a sealed
 * cookie so that logging out ends a session for good, and idle sessions expire by TTL.
 * A session names its key by digest and is honoured only while a configured key with that
 * digest still holds the `admin` scope: removing a key from API_KEYS (and restarting)
 * ends its sessions, as it ends its API access. Only a hash of the session id is stored,
 * so reading Redis yields no usable cookie.
 */
export class AdminSessions {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #idleMs: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #adminKeys: ReadonlyMap<string, ApiKey>;

  constructor(redis: Redis, apiKeys: readonly ApiKey[], options: AdminSessionOptions = {}) {
    this.#redis = redis;
    this.#prefix = options.prefix ?? "evergreen:admin:session:";
    this.#idleMs = options.idleMs ?? 3_600_000;
    this.#maxAgeMs = options.maxAgeMs ?? 12 * 3_600_000;
    this.#now = options.now ?? Date.now;
    this.#adminKeys = new Map(
      apiKeys
        .filter((key) => grantsScope(key.scopes, "admin"))
        .map((key) => [sha256Hex(key.key), key]),
    );
  }

  /** How long the cookie may live: the idle limit, renewed on every request. */
  get cookieMaxAgeSeconds(): number {
    return Math.floor(this.#idleMs / 1000);
  }

  /** Starts a session for an admin key (the caller checked its scope). */
  async create(key: ApiKey): Promise<AdminSession> {
    const id = randomBytes(32).toString("base64url");
    const stored: StoredSession = {
      keyName: key.name,
      keyDigest: sha256Hex(key.key),
      csrfToken: randomBytes(32).toString("base64url"),
      createdAt: this.#now(),
    };
    await this.#redis.set(this.#key(id), JSON.stringify(stored), "PX", this.#idleMs);
    return { id, keyName: stored.keyName, csrfToken: stored.csrfToken };
  }

  /**
   * The live session a cookie names, its idle timer renewed; undefined when unknown,
   * expired, or its key is no longer an admin key.
   */
  async find(id: string | undefined): Promise<AdminSession | undefined> {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const text = await this.#redis.get(this.#key(id));
    if (!text) return undefined;
    const stored = JSON.parse(text) as StoredSession;
    const key = this.#adminKeys.get(stored.keyDigest);
    if (!key || this.#now() - stored.createdAt > this.#maxAgeMs) {
      await this.end(id);
      return undefined;
    }
    await this.#redis.pexpire(this.#key(id), this.#idleMs);
    return { id, keyName: key.name, csrfToken: stored.csrfToken };
  }

  async end(id: string): Promise<void> {
    await this.#redis.del(this.#key(id));
  }

  #key(id: string): string {
    return this.#prefix + sha256Hex(id);
  }
}

/** Whether a form's token is the session's, compared in constant time. */
export function csrfTokenMatches(session: AdminSession, presented: unknown): boolean {
  return tokensMatch(session.csrfToken, presented);
}

/** Whether `presented` is `expected`, compared in constant time (as digests: any length). */
export function tokensMatch(expected: string | undefined, presented: unknown): boolean {
  if (expected === undefined || expected === "" || typeof presented !== "string") return false;
  const want = createHash("sha256").update(expected).digest();
  const given = createHash("sha256").update(presented).digest();
  return timingSafeEqual(want, given);
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}
