import type { Schemas } from "./generated/openapi-types.js";

export type AccessToken = Schemas["AccessToken"];

export interface AccessTokenSource {
  /** `GET /v1/connections/:id/token?minValidity=`. */
  token(connectionId: string, minValidity: number): Promise<AccessToken>;
  /** `POST /v1/connections/:id/refresh`. */
  refresh(connectionId: string): Promise<unknown>;
}

interface Cached {
  readonly token: AccessToken;
  /** Epoch ms; null for a token that does not expire. */
  readonly expiresAt: number | null;
}

/**
 * Access tokens per connection, in this process: served from memory while they stay
 * valid for the asked `minValidity`, fetched once however many callers ask at the same
 * time (single flight), and replaced once however many callers saw the provider refuse
 * the same token.
 */
export class AccessTokenCache {
  readonly #source: AccessTokenSource;
  readonly #maxEntries: number;
  readonly #cached = new Map<string, Cached>();
  /** Reads in flight, by connection and minValidity. */
  readonly #reads = new Map<string, Promise<AccessToken>>();
  /** Forced refreshes in flight, by connection: every caller waits for it. */
  readonly #refreshes = new Map<string, Promise<AccessToken>>();
  /**
   * Bumped by each forced refresh: a read that started before it may answer the refused
   * token after it, and must not overwrite the new one.
   */
  readonly #generation = new Map<string, number>();

  constructor(source: AccessTokenSource, maxEntries: number) {
    this.#source = source;
    this.#maxEntries = maxEntries;
  }

  get(connectionId: string, minValidity: number): Promise<AccessToken> {
    const refreshing = this.#refreshes.get(connectionId);
    if (refreshing) return refreshing;
    const cached = this.#cached.get(connectionId);
    if (cached && validFor(cached, minValidity)) return Promise.resolve(cached.token);
    const key = `${connectionId} ${minValidity}`;
    const inFlight = this.#reads.get(key);
    if (inFlight) return inFlight;
    const generation = this.#generation.get(connectionId) ?? 0;
    // Started on the next microtask, once the flight is registered: a caller reached from
    // inside the source's fetch (an instrumented fetch, a hook) joins it.
    const read = Promise.resolve()
      .then(() => this.#source.token(connectionId, minValidity))
      .then((token) => {
        if ((this.#generation.get(connectionId) ?? 0) === generation) {
          this.#store(connectionId, token);
        }
        return token;
      })
      .finally(() => this.#reads.delete(key));
    this.#reads.set(key, read);
    return read;
  }

  /**
   * A new token after the provider refused `refused` (a 401): one refresh per connection,
   * joined by every caller that saw the same refusal; a caller whose refused token was
   * already replaced gets the replacement without another refresh.
   */
  refresh(connectionId: string, refused: string): Promise<AccessToken> {
    const inFlight = this.#refreshes.get(connectionId);
    if (inFlight) return inFlight;
    const cached = this.#cached.get(connectionId);
    if (cached && cached.token.accessToken !== refused && validFor(cached, 0)) {
      return Promise.resolve(cached.token);
    }
    this.#generation.set(connectionId, (this.#generation.get(connectionId) ?? 0) + 1);
    this.#cached.delete(connectionId);
    const refresh = Promise.resolve()
      .then(() => this.#source.refresh(connectionId))
      .then(() => this.#source.token(connectionId, 0))
      .then((token) => {
        this.#store(connectionId, token);
        return token;
      })
      .finally(() => this.#refreshes.delete(connectionId));
    this.#refreshes.set(connectionId, refresh);
    return refresh;
  }

  #store(connectionId: string, token: AccessToken): void {
    this.#cached.delete(connectionId);
    // Oldest first out: a Map iterates in insertion order, and a store re-inserts.
    if (this.#cached.size >= this.#maxEntries) {
      const oldest = this.#cached.keys().next().value;
      if (oldest !== undefined) this.#cached.delete(oldest);
    }
    const expiresAt = token.expiresAt === null ? null : Date.parse(token.expiresAt);
    this.#cached.set(connectionId, { token, expiresAt });
  }
}

function validFor({ expiresAt }: Cached, minValiditySeconds: number): boolean {
  return expiresAt === null || expiresAt - Date.now() > minValiditySeconds * 1000;
}
