import { type AccessToken, AccessTokenCache } from "./access-tokens.js";
import { errorFromResponse, UnreachableError } from "./errors.js";
import { OPERATIONS, type Operations, type Schemas } from "./generated/openapi-types.js";
export type Integration = Schemas["Integration"];
export type IntegrationInput = Schemas["IntegrationInput"];
export type Connection = Schemas["Connection"];
export type ConnectionInput = Schemas["ConnectionInput"];
export type ConnectionPage = Schemas["ConnectionPage"];
export type ConnectSession = Schemas["ConnectSession"];
export type ConnectSessionInput = Schemas["ConnectSessionInput"];
export type CodeExchangeInput = Schemas["CodeExchangeInput"];
export type ConnectionQuery = Operations["connections.list"]["query"];
export type Webhook = Schemas["Webhook"];
export type WebhookInput = Schemas["WebhookInput"];
export type WebhookWithSecret = Schemas["WebhookWithSecret"];
export type WebhookDelivery = Schemas["WebhookDelivery"];
export type WebhookDeliveryPage = Schemas["WebhookDeliveryPage"];
export type WebhookDeliveryQuery = Operations["webhooks.deliveries"]["query"];
export type FeedEvent = Schemas["FeedEvent"];
export type EventPage = Schemas["EventPage"];
export type EventQuery = Operations["events.list"]["query"];
export type { AccessToken };

export interface EvergreenClientOptions {
  /** Where the api listens, e.g. `https://evergreen.internal` (no trailing `/v1`). */
  readonly baseUrl: string;
  /** One of the api's API_KEYS, holding the scopes of the routes you call. */
  readonly apiKey: string;
  /** The fetch for calls to the api. @defaultValue globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** Time limit of each call to the api, in ms. @defaultValue 30000 */
  readonly timeoutMs?: number;
  /** Connections whose tokens are kept in memory; the least recently stored go first. @defaultValue 10000 */
  readonly maxCachedTokens?: number;
}

export interface TokenOptions {
  /**
   * Seconds the token must stay valid: a cached one that expires sooner is not used, and
   * Evergreen refreshes first when its stored one would. @defaultValue 60
   */
  readonly minValidity?: number;
}

export interface ProviderFetchOptions extends TokenOptions {
  /** The fetch for calls to the provider's API. @defaultValue the client's fetch */
  readonly fetch?: typeof fetch;
}

type Responses<Id extends keyof Operations> = Operations[Id]["responses"];
/** What an operation answers on success. */
type Success<Id extends keyof Operations> = Responses<Id>[Extract<
  keyof Responses<Id>,
  200 | 201 | 202 | 204
>];

type FetchInput = Parameters<typeof fetch>[0];

interface RequestParts {
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  readonly body?: unknown;
}

/**
 * The Evergreen API, typed from its OpenAPI document (openapi.json): every method throws an
 * `EvergreenError` subclass for an error answer (`NeedsReauthError`, `IntegrationError`,
 * `RetryLaterError`, `NotFoundError`, ...).
 */
export class EvergreenClient {
  readonly #baseUrl: string;
  readonly #apiKey: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #tokens: AccessTokenCache;

  constructor(options: EvergreenClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#tokens = new AccessTokenCache(
      {
        token: (id, minValidity) => this.getToken(id, { minValidity }),
        refresh: (id) => this.refreshConnection(id),
      },
      options.maxCachedTokens ?? 10_000,
    );
  }

  // Integrations (admin scope)

  /** Creates or updates an integration by `key`; the secret is never returned. */
  upsertIntegration(input: IntegrationInput): Promise<Integration> {
    return this.#call("integrations.upsert", {}, { body: input });
  }

  async listIntegrations(): Promise<Integration[]> {
    return (await this.#call("integrations.list", {})).data;
  }

  getIntegration(key: string): Promise<Integration> {
    return this.#call("integrations.read", { key });
  }

  /** Refused with a `ConflictError` while the integration has connections. */
  async deleteIntegration(key: string): Promise<void> {
    await this.#call("integrations.remove", { key });
  }

  // Connections

  /** Hands over tokens the app obtained itself; upsert by `integration` + `externalId`. */
  upsertConnection(input: ConnectionInput): Promise<Connection> {
    return this.#call("connections.upsert", {}, { body: input });
  }

  /** One page; pass `nextCursor` back as `cursor` for the next. */
  listConnections(query: ConnectionQuery = {}): Promise<ConnectionPage> {
    return this.#call("connections.list", {}, { query });
  }

  getConnection(id: string): Promise<Connection> {
    return this.#call("connections.read", { id });
  }

  /**
   * A token straight from the api, with no cache in this process: prefer getAccessToken.
   * `NeedsReauthError`, `IntegrationError` or `RetryLaterError` when none can be had.
   */
  getToken(id: string, { minValidity }: TokenOptions = {}): Promise<AccessToken> {
    return this.#call("connections.token", { id }, { query: { minValidity } });
  }

  /** Refreshes now (joining a refresh in flight) and answers the connection. */
  refreshConnection(id: string): Promise<Connection> {
    return this.#call("connections.refresh", { id });
  }

  async deleteConnection(id: string): Promise<void> {
    await this.#call("connections.remove", { id });
  }

  // Connect flow

  /** An authorization URL for one user (10 minutes, single use): send their browser there. */
  createConnectSession(input: ConnectSessionInput): Promise<ConnectSession> {
    return this.#call("connect.session", {}, { body: input });
  }

  /** For apps running their own redirect: Evergreen exchanges the code and keeps the tokens. */
  exchangeCode(input: CodeExchangeInput): Promise<Connection> {
    return this.#call("connect.exchange", {}, { body: input });
  }

  // Webhook endpoints (admin scope)

  /** The answer carries the signing secret (`whsec_...`), shown this once: store it. */
  createWebhook(input: WebhookInput): Promise<WebhookWithSecret> {
    return this.#call("webhooks.create", {}, { body: input });
  }

  async listWebhooks(): Promise<Webhook[]> {
    return (await this.#call("webhooks.list", {})).data;
  }

  getWebhook(id: string): Promise<Webhook> {
    return this.#call("webhooks.read", { id });
  }

  /** Its pending deliveries go with it: nothing more is sent. */
  async deleteWebhook(id: string): Promise<void> {
    await this.#call("webhooks.remove", { id });
  }

  /**
   * A new signing secret, shown this once; the old one keeps signing alongside it for 24
   * hours, so receivers can verify with either while they switch.
   */
  rotateWebhookSecret(id: string): Promise<WebhookWithSecret> {
    return this.#call("webhooks.rotateSecret", { id });
  }

  /** One page, newest first; pass `nextCursor` back as `cursor` for the next. */
  listWebhookDeliveries(
    webhookId: string,
    query: WebhookDeliveryQuery = {},
  ): Promise<WebhookDeliveryPage> {
    return this.#call("webhooks.deliveries", { id: webhookId }, { query });
  }

  /**
   * Sends the delivery again now (same `webhook-id`) and answers it, `pending`; a
   * `ConflictError` while the endpoint is disabled.
   */
  retryWebhookDelivery(webhookId: string, deliveryId: string): Promise<WebhookDelivery> {
    return this.#call("webhooks.retryDelivery", { id: webhookId, deliveryId });
  }

  // Event feed (a key that reads tokens or writes connections)

  /**
   * One page of the feed, oldest first; pass `nextCursor` back as `after`, at once while
   * `hasMore`, later to poll for what comes next.
   */
  listEvents(query: EventQuery = {}): Promise<EventPage> {
    return this.#call("events.list", {}, { query });
  }

  // Tokens for calls to the provider's API

  /**
   * A token valid for at least `minValidity` seconds, from this process's cache while it
   * is; otherwise from the api, one request however many callers ask at once.
   */
  getAccessToken(
    connectionId: string,
    { minValidity = 60 }: TokenOptions = {},
  ): Promise<AccessToken> {
    return this.#tokens.get(connectionId, minValidity);
  }

  /**
   * After the provider's API refused `refusedToken` (401): refreshes the connection now
   * and answers its new token. Callers that saw the same refusal share one refresh, and
   * getAccessToken waits for it rather than answer the refused token.
   */
  refreshAccessToken(connectionId: string, refusedToken: string): Promise<AccessToken> {
    return this.#tokens.refresh(connectionId, refusedToken);
  }

  /**
   * A fetch for the provider's API on behalf of one connection: each call carries
   * `Authorization: Bearer <token>`; on a 401 the connection is refreshed once (shared
   * with concurrent calls) and the call sent again, once. A body sent twice must be
   * replayable: a string, bytes, FormData or URLSearchParams, not a one-shot stream.
   */
  fetchFor(
    connectionId: string,
    { fetch: providerFetch = this.#fetch, ...options }: ProviderFetchOptions = {},
  ): typeof fetch {
    const send = (input: FetchInput, init: RequestInit | undefined, token: string) => {
      const headers = new Headers(input instanceof Request ? input.headers : undefined);
      for (const [name, value] of new Headers(init?.headers)) headers.set(name, value);
      headers.set("authorization", `Bearer ${token}`);
      return providerFetch(input, { ...init, headers });
    };
    return async (input, init) => {
      const again = input instanceof Request ? input.clone() : input;
      const { accessToken } = await this.getAccessToken(connectionId, options);
      const response = await send(input, init, accessToken);
      if (response.status !== 401) return response;
      // Free the refused answer's connection before the retry.
      await response.body?.cancel();
      const fresh = await this.refreshAccessToken(connectionId, accessToken);
      return send(again, init, fresh.accessToken);
    };
  }

  /** One operation of the document: its method and path come from OPERATIONS. */
  async #call<Id extends keyof Operations>(
    id: Id,
    params: Operations[Id]["params"],
    parts: RequestParts = {},
  ): Promise<Success<Id>> {
    const { method, path } = OPERATIONS[id];
    const url = path.replace(/\{(\w+)\}/g, (_, name: string) =>
      encodeURIComponent(String((params as Record<string, string>)[name])),
    );
    return (await this.#request(method, url, parts)) as Success<Id>;
  }

  async #request(
    method: string,
    path: string,
    { query, body }: RequestParts = {},
  ): Promise<unknown> {
    const url = new URL(`${this.#baseUrl}${path}`);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#apiKey}`,
      accept: "application/json",
    };
    if (body !== undefined) headers["content-type"] = "application/json";
    const unreachable = (error: unknown): never => {
      if (!(error instanceof Error)) throw error;
      if (error.name === "TimeoutError") {
        throw new UnreachableError(`${method} ${path}: no answer within ${this.#timeoutMs} ms`, {
          cause: error,
        });
      }
      // What fetch rejects with when the network failed; anything else is the caller's.
      if (error instanceof TypeError && error.message === "fetch failed") {
        throw new UnreachableError(`${method} ${path}: could not reach ${this.#baseUrl}`, {
          cause: error,
        });
      }
      throw error;
    };
    const response = await this.#fetch(url, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(this.#timeoutMs),
    }).catch(unreachable);
    if (!response.ok) throw await errorFromResponse(response);
    if (response.status === 204) return undefined;
    return response.json().catch(unreachable);
  }
}
