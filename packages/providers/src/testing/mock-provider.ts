import { createHash, randomBytes, randomUUID } from "node:crypto";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";

export interface MockProviderOptions {
  /** Delay before every answer, e.g. 50 for the benchmark. @defaultValue 0 */
  latencyMs?: number;
  /** Client id the token endpoint accepts. @defaultValue "mock-client" */
  clientId?: string;
  /** Client secret the token endpoint accepts. @defaultValue "mock-secret" */
  clientSecret?: string;
  /** How many recent requests `received` keeps. @defaultValue 100 */
  keepReceived?: number;
  /** How the grants that users consent to behave. @defaultValue {} */
  consentGrant?: GrantOptions;
  /**
   * Address to listen on, e.g. a container network's gateway so that containers reach a
   * provider running on the host (test/containers). @defaultValue "127.0.0.1"
   */
  host?: string;
  /**
   * How the imitated provider shapes its token answers (success extras, dead-grant and
   * bad-client bodies). Data, kept beside each provider's contract test. @defaultValue {}
   */
  answers?: AnswerShapes;
}

/** A fixed answer: status, body (a string as is, anything else as JSON) and headers. */
export type CannedAnswer = Omit<
  Exclude<ScriptedAnswer, { hang: true } | { reset: true } | { endless: true }>,
  "applyRefresh"
>;

/**
 * How a real provider's token endpoint bends RFC 6749, as data the mock applies to every
 * answer of its state machine: the grant really dies, the client is really checked, only
 * the shape of the answer is the provider's.
 */
export interface AnswerShapes {
  /**
   * Fields added to every token answer: Salesforce's `instance_url`, Slack's `ok: true`,
   * Strava's epoch `expires_at`. Given the issued lifetime and the time of issue.
   */
  successFields?: (issued: { expiresIn: number; issuedAt: Date }) => Record<string, unknown>;
  /** Token answers carry no `expires_in` (Salesforce). @defaultValue false */
  omitExpiresIn?: boolean;
  /** Replaces RFC 6749's `400 invalid_grant` for a dead, unknown or reused refresh token. */
  invalidGrant?: CannedAnswer;
  /** Replaces RFC 6749's `401 invalid_client` when the token endpoint refuses the client. */
  invalidClient?: CannedAnswer;
}

export interface GrantOptions {
  /** Each refresh returns a new refresh token and kills the presented one. @defaultValue false */
  rotate?: boolean;
  /** `expires_in` of every access token of this grant. @defaultValue 3600 */
  accessTokenTtlSeconds?: number;
  /** Answers without `refresh_token` (Google, Amazon): the client keeps the old one. @defaultValue false */
  omitRefreshToken?: boolean;
  /** Sent as `scope` in every answer; omitted when absent. */
  scope?: string;
  /**
   * With `rotate`: how long the refresh token just rotated away still works, as Xero (1800 s),
   * Okta (0-60 s) and Atlassian document: seconds after its rotation, or
   * `"until_new_token_used"` (Shopify: until its successor is first presented). Presenting it
   * then refreshes as the current one would. @defaultValue null (reuse revokes the grant)
   */
  reuseGrace?: number | "until_new_token_used" | null;
}

export interface IssuedGrant {
  grantId: string;
  refreshToken: string;
  accessToken: string;
  expiresIn: number;
}

export interface GrantSnapshot {
  /** The one refresh token that works now. */
  refreshToken: string;
  /** The latest access token issued. */
  accessToken: string;
  revoked: boolean;
  refreshes: number;
  /** Successful refresh answers written to the client (`refreshes` minus answers lost on the way). */
  deliveredRefreshes: number;
  /** When the latest access token expires. */
  accessTokenExpiresAt: Date;
}

/** A rotated-away refresh token presented again (the grant is revoked for it). */
export interface TokenReuse {
  grantId: string;
  at: Date;
  /** When the provider rotated the presented token away. */
  rotatedAt: Date;
  /**
   * Whether the answer carrying its replacement was written to the client. False when it
   * was dropped, timed out or cut off: the client never held the new token, so sending the
   * old one again is all it could do (and no reuse grace means the grant dies).
   */
  replacementDelivered: boolean;
}

/** A grant's access token that expired before the next refresh replaced it. */
export interface TokenLapse {
  grantId: string;
  expiredAt: Date;
  renewedAt: Date;
}

/** What the next request gets instead of the normal token endpoint behaviour. */
export type ScriptedAnswer =
  | {
      /** Never answers; `close()` ends the request. */
      hang: true;
      /** Perform the refresh first (tokens rotate), then lose the answer. @defaultValue false */
      applyRefresh?: boolean;
    }
  | {
      /** The connection is reset without an answer, the request read in full. */
      reset: true;
      /** Perform the refresh first (tokens rotate), then reset. @defaultValue false */
      applyRefresh?: boolean;
    }
  | {
      /**
       * A 200 JSON answer whose body never ends (a hostile or broken endpoint): sent as
       * fast as the client reads, until it hangs up.
       */
      endless: true;
      applyRefresh?: boolean;
    }
  | {
      status: number;
      /** Body `{"error": error, "error_description": errorDescription}` unless `body` is set. */
      error?: string;
      errorDescription?: string;
      /** `Retry-After` header: delay-seconds or an HTTP-date. */
      retryAfter?: string;
      /** A string is sent as is; anything else as JSON. */
      body?: unknown;
      headers?: Record<string, string>;
      /** Perform the refresh first (tokens rotate), then send this answer. @defaultValue false */
      applyRefresh?: boolean;
    };

/** Restricts scripted answers to requests presenting one grant's refresh tokens. */
export interface ScriptTarget {
  grantId?: string;
  /** Any refresh token of the grant; the script follows the grant across rotations. */
  refreshToken?: string;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  contentType: string | null;
  /** Body parameters as sent, from form or JSON; empty when the body was neither. */
  params: Record<string, string>;
  /** How the client authenticated, with the decoded credentials. */
  clientAuth: "basic" | "body" | null;
  clientId: string | null;
  clientSecret: string | null;
  at: Date;
  /** The client's address: which container sent it, when several do. */
  remoteAddress: string | null;
}

interface Grant {
  id: string;
  rotate: boolean;
  ttlSeconds: number;
  omitRefreshToken: boolean;
  scope: string | null;
  reuseGrace: number | "until_new_token_used" | null;
  refreshToken: string;
  /** The refresh token the last refresh rotated away, and when. */
  previous: { refreshToken: string; rotatedAt: number } | null;
  accessToken: string;
  revoked: boolean;
  refreshes: number;
  deliveredRefreshes: number;
  /** When each delivered refresh answer was written (ms since the epoch). */
  deliveredAt: number[];
}

/** A refresh token rotated away: when, and whether the answer with its successor arrived. */
interface Rotation {
  at: number;
  delivered: boolean;
}

/** An authorization code, from consent to its exchange. */
interface PendingCode {
  redirectUri: string;
  /** S256 challenge of the authorization request; null when it sent none. */
  challenge: string | null;
  scope: string | null;
  expiresAt: number;
  /** The grant its exchange created: a second exchange revokes it (RFC 6749 §4.1.2). */
  grant: Grant | null;
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** A successful refresh: counted as delivered once written to the client. */
  refreshed?: { grant: Grant; rotation: Rotation | null };
}

const MAX_BODY_BYTES = 1_048_576;
/** RFC 6749 §4.1.2 recommends at most 10 minutes. */
const CODE_LIFETIME_MS = 600_000;

/** Starts a real OAuth 2.0 token endpoint on 127.0.0.1 (or `host`) with a random port. */
export async function startMockProvider(options: MockProviderOptions = {}): Promise<MockProvider> {
  const provider = new MockProvider(options);
  await provider.listen();
  return provider;
}

/**
 * An OAuth 2.0 provider's token endpoint (`POST /token`, refresh_token grant) that rotates
 * refresh tokens like GitHub Apps or Box: presenting a rotated-away refresh token counts as
 * reuse and revokes the whole grant, as real providers do on suspected token theft.
 *
 * Its authorization endpoint (`GET /authorize`) shows a consent page whose two links, or
 * the same URL with `approve=1` or `deny=1` (curl), send the browser back to `redirect_uri`
 * with a code or `error=access_denied`. Codes are single use, expire in 10 minutes and are
 * exchanged (authorization_code grant) only with the same `redirect_uri` and, when the
 * authorization request carried an S256 challenge, the matching `code_verifier`.
 *
 * Its revocation endpoint (`POST /revoke`, RFC 7009) kills the grant of the token it is
 * given; `failNextRevocation` scripts answers such as 503 with `Retry-After`.
 */
export class MockProvider {
  readonly clientId: string;
  readonly clientSecret: string;
  /** Delay before every answer; may be changed between requests. */
  latencyMs: number;
  /** How the grants that users consent to behave; may be changed between consents. */
  consentGrant: GrantOptions;
  /**
   * While set, every token request that no script answers gets this instead: a switchable
   * fault (a 429 storm, a 5xx burst, answers dropped after rotating) for as long as it lasts.
   * @defaultValue null
   */
  standingAnswer: ScriptedAnswer | null = null;

  readonly #keepReceived: number;
  readonly #host: string;
  readonly #server: Server;
  readonly #grants = new Map<string, Grant>();
  /** Every refresh token ever issued, current or rotated away, to its grant. */
  readonly #grantByRefreshToken = new Map<string, Grant>();
  readonly #accessTokens = new Map<string, { grant: Grant; expiresAt: number }>();
  readonly #script: ScriptedAnswer[] = [];
  readonly #revocationScript: ScriptedAnswer[] = [];
  readonly #scriptByGrant = new Map<string, ScriptedAnswer[]>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #received: ReceivedRequest[] = [];
  readonly #refreshesByGrant = new Map<string, number>();
  readonly #codes = new Map<string, PendingCode>();
  readonly #rotations = new Map<string, Rotation>();
  readonly #reuses: TokenReuse[] = [];
  readonly #lapses: TokenLapse[] = [];
  readonly #answers: AnswerShapes;
  #requests = 0;
  #reuseCount = 0;
  #port = 0;

  constructor(options: MockProviderOptions = {}) {
    this.clientId = options.clientId ?? "mock-client";
    this.clientSecret = options.clientSecret ?? "mock-secret";
    this.latencyMs = options.latencyMs ?? 0;
    this.#keepReceived = options.keepReceived ?? 100;
    this.consentGrant = options.consentGrant ?? {};
    this.#host = options.host ?? "127.0.0.1";
    this.#answers = options.answers ?? {};
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
  }

  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  get url(): string {
    return `http://${this.#host.includes(":") ? `[${this.#host}]` : this.#host}:${this.#port}`;
  }

  get tokenUrl(): string {
    return `${this.url}/token`;
  }

  get authorizationUrl(): string {
    return `${this.url}/authorize`;
  }

  /** RFC 7009 revocation endpoint: `POST /revoke`, form `token` (+ `token_type_hint`). */
  get revocationUrl(): string {
    return `${this.url}/revoke`;
  }

  /** RFC 7662 token introspection, for the client's own access tokens. */
  get introspectionUrl(): string {
    return `${this.url}/introspect`;
  }

  /** Every HTTP request received, whatever its fate. */
  get requests(): number {
    return this.#requests;
  }

  /** Refresh tokens presented after they were rotated away. Tests expect it to stay 0. */
  get reuseCount(): number {
    return this.#reuseCount;
  }

  /** Successful refreshes (tokens issued) per grant id. */
  get refreshesByGrant(): ReadonlyMap<string, number> {
    return this.#refreshesByGrant;
  }

  /** Every reuse of a rotated-away refresh token, oldest first. */
  get reuses(): readonly TokenReuse[] {
    return this.#reuses;
  }

  /** Every access token that expired before its grant's next refresh, oldest first. */
  get lapses(): readonly TokenLapse[] {
    return this.#lapses;
  }

  /** The most recent requests, oldest first. */
  get received(): readonly ReceivedRequest[] {
    return this.#received;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(0, this.#host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    const address: AddressInfo | string | null = this.#server.address();
    if (address === null || typeof address === "string")
      throw new Error("mock provider not on TCP");
    this.#port = address.port;
  }

  /** Registers a grant, as if the user had just authorized, and returns its first tokens. */
  issueGrant(options: GrantOptions = {}): IssuedGrant {
    const grant = this.#newGrant(options);
    return {
      grantId: grant.id,
      refreshToken: grant.refreshToken,
      accessToken: grant.accessToken,
      expiresIn: grant.ttlSeconds,
    };
  }

  #newGrant(options: GrantOptions): Grant {
    if (options.rotate === true && options.omitRefreshToken === true) {
      throw new Error("a rotating grant must return its new refresh token");
    }
    const grant: Grant = {
      id: randomUUID(),
      rotate: options.rotate ?? false,
      ttlSeconds: options.accessTokenTtlSeconds ?? 3600,
      omitRefreshToken: options.omitRefreshToken ?? false,
      scope: options.scope ?? null,
      reuseGrace: options.reuseGrace ?? null,
      refreshToken: newToken("rt"),
      previous: null,
      accessToken: "",
      revoked: false,
      refreshes: 0,
      deliveredRefreshes: 0,
      deliveredAt: [],
    };
    this.#grants.set(grant.id, grant);
    this.#grantByRefreshToken.set(grant.refreshToken, grant);
    this.#refreshesByGrant.set(grant.id, 0);
    this.#issueAccessToken(grant);
    return grant;
  }

  grant(grantId: string): GrantSnapshot | undefined {
    const grant = this.#grants.get(grantId);
    if (grant === undefined) return undefined;
    const { refreshToken, accessToken, revoked, refreshes, deliveredRefreshes } = grant;
    const expiresAt = this.#accessTokens.get(accessToken)?.expiresAt ?? 0;
    return {
      refreshToken,
      accessToken,
      revoked,
      refreshes,
      deliveredRefreshes,
      accessTokenExpiresAt: new Date(expiresAt),
    };
  }

  /** When each successful refresh answer of this grant was written to the client, oldest first. */
  deliveriesOf(grantId: string): readonly Date[] {
    return (this.#grants.get(grantId)?.deliveredAt ?? []).map((at) => new Date(at));
  }

  /** Issued by this provider, not expired, and its grant not revoked. */
  isAccessTokenValid(accessToken: string): boolean {
    const entry = this.#accessTokens.get(accessToken);
    return entry !== undefined && !entry.grant.revoked && entry.expiresAt > Date.now();
  }

  /**
   * Kills the grant owning this refresh or access token, as a user revoking the app's
   * access at the provider does: every later refresh gets invalid_grant. An app that lets
   * Evergreen hold the refresh token (the connect flow) only ever sees access tokens.
   */
  revoke(token: string): void {
    const grant = this.#grantByRefreshToken.get(token) ?? this.#accessTokens.get(token)?.grant;
    if (grant === undefined) throw new Error("unknown token");
    grant.revoked = true;
  }

  /** The next `count` matching requests get `answer`. */
  failNext(count: number, answer: ScriptedAnswer, target?: ScriptTarget): void {
    const queue = this.#queueFor(target);
    for (let i = 0; i < count; i++) queue.push(answer);
  }

  /**
   * The next `count` revocation requests get `answer` instead (e.g. 503 with `retryAfter`,
   * RFC 7009 §2.2.1); the grant is not revoked by them.
   */
  failNextRevocation(count: number, answer: ScriptedAnswer): void {
    for (let i = 0; i < count; i++) this.#revocationScript.push(answer);
  }

  /** The next requests get these answers, in order. */
  enqueue(...answers: ScriptedAnswer[]): void {
    this.#script.push(...answers);
  }

  /** Stops the server; hanging and delayed requests are cut off. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  #queueFor(target: ScriptTarget | undefined): ScriptedAnswer[] {
    if (target === undefined) return this.#script;
    const grant =
      target.grantId !== undefined
        ? this.#grants.get(target.grantId)
        : target.refreshToken !== undefined
          ? this.#grantByRefreshToken.get(target.refreshToken)
          : undefined;
    if (grant === undefined) throw new Error("script target names no known grant");
    const existing = this.#scriptByGrant.get(grant.id);
    if (existing !== undefined) return existing;
    const queue: ScriptedAnswer[] = [];
    this.#scriptByGrant.set(grant.id, queue);
    return queue;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#requests += 1;
    const raw = await readBody(req);
    if (raw === null) {
      res.writeHead(413).end();
      return;
    }
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const contentType = req.headers["content-type"] ?? null;
    const params = parseParams(raw, contentType);
    const credentials = clientCredentials(req.headers.authorization, params);
    this.#record({
      method: req.method ?? "",
      path,
      headers: req.headers,
      contentType,
      params: params ?? {},
      ...credentials,
      at: new Date(),
      remoteAddress: req.socket.remoteAddress ?? null,
    });

    if (path === "/authorize" && req.method === "GET") {
      return this.#send(res, this.#authorize(new URL(req.url ?? "/", this.url).searchParams));
    }
    if (path === "/revoke" && req.method === "POST") {
      const scripted = this.#revocationScript.shift();
      if (scripted !== undefined) {
        if ("hang" in scripted) return;
        if ("reset" in scripted) return void req.socket.resetAndDestroy();
        if ("endless" in scripted) return sendEndless(res);
        return this.#send(res, scriptedReply(scripted));
      }
      return this.#send(res, this.#revokeRequest(params, credentials));
    }
    if (path === "/introspect" && req.method === "POST" && params !== null) {
      return this.#send(res, this.#introspect(params, credentials));
    }
    if (path !== "/token") return this.#send(res, oauthError(404, "not_found"));
    if (req.method !== "POST") return this.#send(res, oauthError(405, "invalid_request"));
    if (params === null) {
      return this.#send(res, oauthError(400, "invalid_request", "unsupported body"));
    }

    const presented = params.refresh_token;
    const scripted = this.#nextScripted(presented) ?? this.standingAnswer ?? undefined;
    if (scripted !== undefined) {
      if (scripted.applyRefresh === true) this.#token(params, credentials);
      if ("hang" in scripted) return; // closeAllConnections() in close() ends it
      if ("reset" in scripted) return void req.socket.resetAndDestroy();
      if ("endless" in scripted) return sendEndless(res);
      return this.#send(res, scriptedReply(scripted));
    }
    return this.#send(res, this.#token(params, credentials));
  }

  /**
   * The consent page, or with `approve=1` / `deny=1` the redirect back to the client. Only
   * a request it cannot trust (unknown client, no usable redirect_uri) gets an error page:
   * RFC 6749 §4.1.2.1 forbids redirecting those.
   */
  #authorize(query: URLSearchParams): Reply {
    const redirectUri = query.get("redirect_uri") ?? "";
    if (query.get("client_id") !== this.clientId) return page(400, "Unknown client_id.");
    if (!/^https?:\/\//.test(redirectUri) || !URL.canParse(redirectUri)) {
      return page(400, "redirect_uri is missing or not an http(s) URL.");
    }
    const back = (params: Record<string, string>) => {
      const target = new URL(redirectUri);
      for (const [name, value] of Object.entries(params)) target.searchParams.set(name, value);
      const state = query.get("state");
      if (state !== null) target.searchParams.set("state", state);
      return { status: 302, headers: { location: target.toString() }, body: "" };
    };
    if (query.get("response_type") !== "code") return back({ error: "unsupported_response_type" });
    const challenge = query.get("code_challenge");
    if (challenge !== null && query.get("code_challenge_method") !== "S256") {
      return back({ error: "invalid_request", error_description: "only S256 is supported" });
    }
    if (query.get("deny") === "1") return back({ error: "access_denied" });
    if (query.get("approve") !== "1") {
      const choice = (name: string) => {
        const link = new URLSearchParams(query);
        link.set(name, "1");
        return escapeHtml(`/authorize?${link}`);
      };
      return page(
        200,
        `Allow <b>${escapeHtml(this.clientId)}</b> to access your mock account` +
          ` (scope: ${escapeHtml(query.get("scope") ?? "none")})?</p>` +
          `<p><a href="${choice("approve")}">Allow</a> &middot; <a href="${choice("deny")}">Deny</a>`,
      );
    }
    const code = `mock-code-${randomBytes(16).toString("base64url")}`;
    this.#codes.set(code, {
      redirectUri,
      challenge,
      scope: query.get("scope"),
      expiresAt: Date.now() + CODE_LIFETIME_MS,
      grant: null,
    });
    return back({ code });
  }

  /**
   * RFC 7009 §2.1-2.2: the client authenticates, and any of the grant's tokens revokes the
   * whole grant. An unknown token still gets 200: the client cannot act on the difference.
   */
  #revokeRequest(params: Record<string, string> | null, credentials: ClientCredentials): Reply {
    if (params === null || !params.token) {
      return oauthError(400, "invalid_request", "token is missing");
    }
    const refused = this.#checkClient(params, credentials);
    if (refused !== null) return refused;
    const grant =
      this.#grantByRefreshToken.get(params.token) ?? this.#accessTokens.get(params.token)?.grant;
    if (grant !== undefined) grant.revoked = true;
    return { status: 200, headers: { "cache-control": "no-store" }, body: "" };
  }

  #token(params: Record<string, string>, credentials: ClientCredentials): Reply {
    const refused = this.#checkClient(params, credentials);
    if (refused !== null) {
      const shaped = this.#answers.invalidClient;
      return shaped === undefined ? refused : scriptedReply(shaped);
    }
    if (params.grant_type === "refresh_token") return this.#refresh(params);
    if (params.grant_type === "authorization_code") return this.#exchangeCode(params);
    return oauthError(400, "unsupported_grant_type");
  }

  /**
   * RFC 7662 §2.2: `active` and, for a live token, its scope and expiry. Any token that is
   * unknown, expired or of a revoked grant is just `{"active": false}`.
   */
  #introspect(params: Record<string, string>, credentials: ClientCredentials): Reply {
    const refused = this.#checkClient(params, credentials);
    if (refused !== null) return refused;
    const token = params.token ?? "";
    const entry = this.#accessTokens.get(token);
    if (entry === undefined || !this.isAccessTokenValid(token)) return json(200, { active: false });
    return json(200, {
      active: true,
      client_id: this.clientId,
      token_type: "Bearer",
      exp: Math.floor(entry.expiresAt / 1000),
      ...(entry.grant.scope === null ? {} : { scope: entry.grant.scope }),
    });
  }

  /** The code grant (RFC 6749 §4.1.3), with PKCE verification (RFC 7636 §4.6). */
  #exchangeCode(params: Record<string, string>): Reply {
    const pending = this.#codes.get(params.code ?? "");
    if (pending === undefined || pending.expiresAt <= Date.now()) {
      return oauthError(400, "invalid_grant", "authorization code is invalid or expired");
    }
    if (pending.grant !== null) {
      // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
      pending.grant.revoked = true;
      return oauthError(400, "invalid_grant", "authorization code was already used");
    }
    if (params.redirect_uri !== pending.redirectUri) {
      return oauthError(400, "invalid_grant", "redirect_uri does not match the authorization");
    }
    const verifier = params.code_verifier;
    if (
      pending.challenge === null
        ? verifier !== undefined
        : !pkceMatches(verifier, pending.challenge)
    ) {
      return oauthError(400, "invalid_grant", "code_verifier does not match the challenge");
    }
    const grant = this.#newGrant({
      ...this.consentGrant,
      ...(pending.scope === null ? {} : { scope: pending.scope }),
    });
    pending.grant = grant;
    // The first answer of a grant always carries its refresh token, Google's included.
    return this.#tokenAnswer(grant, true);
  }

  #nextScripted(refreshToken: string | undefined): ScriptedAnswer | undefined {
    const grant =
      refreshToken === undefined ? undefined : this.#grantByRefreshToken.get(refreshToken);
    const perGrant = grant === undefined ? undefined : this.#scriptByGrant.get(grant.id);
    return perGrant?.shift() ?? this.#script.shift();
  }

  #checkClient(params: Record<string, string>, credentials: ClientCredentials): Reply | null {
    if (credentials.clientAuth === null) {
      return oauthError(401, "invalid_client", "no client authentication");
    }
    if (credentials.clientAuth === "basic" && params.client_secret !== undefined) {
      // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
      return oauthError(400, "invalid_request", "more than one client authentication");
    }
    if (credentials.clientId !== this.clientId || credentials.clientSecret !== this.clientSecret) {
      const reply = oauthError(401, "invalid_client", "client authentication failed");
      if (credentials.clientAuth === "basic") reply.headers["www-authenticate"] = "Basic";
      return reply;
    }
    return null;
  }

  #refresh(params: Record<string, string>): Reply {
    const presented = params.refresh_token;
    if (presented === undefined || presented === "") {
      return oauthError(400, "invalid_request", "refresh_token is missing");
    }
    const grant = this.#grantByRefreshToken.get(presented);
    if (grant === undefined || grant.revoked) {
      return this.#deadGrant("refresh token is invalid or revoked");
    }
    if (presented !== grant.refreshToken && !withinReuseGrace(grant, presented)) {
      // Reuse of a rotated-away token: a real provider assumes theft and revokes the grant.
      this.#reuseCount += 1;
      const rotation = this.#rotations.get(presented);
      this.#reuses.push({
        grantId: grant.id,
        at: new Date(),
        rotatedAt: new Date(rotation?.at ?? 0),
        replacementDelivered: rotation?.delivered ?? false,
      });
      grant.revoked = true;
      return this.#deadGrant("refresh token was already used");
    }

    const now = Date.now();
    const previousExpiry = this.#accessTokens.get(grant.accessToken)?.expiresAt ?? now;
    // Expired at `expiresAt` itself, as isAccessTokenValid says.
    if (previousExpiry <= now) {
      this.#lapses.push({
        grantId: grant.id,
        expiredAt: new Date(previousExpiry),
        renewedAt: new Date(now),
      });
    }
    let rotation: Rotation | null = null;
    if (grant.rotate) {
      rotation = { at: now, delivered: false };
      this.#rotations.set(presented, rotation);
      // Using the current token ends its predecessor's grace: the previous one is now this.
      // A reuse within grace keeps the window it had, which started at the first rotation.
      if (presented === grant.refreshToken) {
        grant.previous = { refreshToken: presented, rotatedAt: now };
      }
      grant.refreshToken = newToken("rt");
      this.#grantByRefreshToken.set(grant.refreshToken, grant);
    }
    this.#issueAccessToken(grant);
    grant.refreshes += 1;
    this.#refreshesByGrant.set(grant.id, grant.refreshes);
    return { ...this.#tokenAnswer(grant, !grant.omitRefreshToken), refreshed: { grant, rotation } };
  }

  /** A token answer in the imitated provider's shape. */
  #tokenAnswer(grant: Grant, withRefreshToken: boolean): Reply {
    const shapes = this.#answers;
    const body: Record<string, unknown> = {
      access_token: grant.accessToken,
      token_type: "Bearer",
    };
    if (shapes.omitExpiresIn !== true) body.expires_in = grant.ttlSeconds;
    if (withRefreshToken) body.refresh_token = grant.refreshToken;
    if (grant.scope !== null) body.scope = grant.scope;
    const extra = shapes.successFields?.({ expiresIn: grant.ttlSeconds, issuedAt: new Date() });
    return json(200, { ...body, ...extra });
  }

  #deadGrant(description: string): Reply {
    const shaped = this.#answers.invalidGrant;
    return shaped === undefined
      ? oauthError(400, "invalid_grant", description)
      : scriptedReply(shaped);
  }

  #issueAccessToken(grant: Grant): void {
    grant.accessToken = newToken("at");
    this.#accessTokens.set(grant.accessToken, {
      grant,
      expiresAt: Date.now() + grant.ttlSeconds * 1000,
    });
  }

  #record(request: ReceivedRequest): void {
    this.#received.push(request);
    if (this.#received.length > this.#keepReceived) this.#received.shift();
  }

  #send(res: ServerResponse, reply: Reply): void {
    const write = () => {
      if (res.destroyed) return;
      res.writeHead(reply.status, reply.headers).end(reply.body);
      if (reply.refreshed) {
        reply.refreshed.grant.deliveredRefreshes += 1;
        reply.refreshed.grant.deliveredAt.push(Date.now());
        if (reply.refreshed.rotation) reply.refreshed.rotation.delivered = true;
      }
    };
    if (this.latencyMs <= 0) {
      write();
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      write();
    }, this.latencyMs);
    this.#timers.add(timer);
  }
}

/** The token rotated away last, presented while its documented grace lasts. */
function withinReuseGrace(grant: Grant, presented: string): boolean {
  const { previous, reuseGrace } = grant;
  if (previous === null || previous.refreshToken !== presented || reuseGrace === null) return false;
  // Its successor has not been presented since, or `previous` would be the successor.
  if (reuseGrace === "until_new_token_used") return true;
  return Date.now() - previous.rotatedAt < reuseGrace * 1000;
}

interface ClientCredentials {
  clientAuth: "basic" | "body" | null;
  clientId: string | null;
  clientSecret: string | null;
}

function clientCredentials(
  authorization: string | undefined,
  params: Record<string, string> | null,
): ClientCredentials {
  const basic = /^Basic\s+(\S+)$/i.exec(authorization ?? "")?.[1];
  if (basic !== undefined) {
    const decoded = Buffer.from(basic, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return { clientAuth: "basic", clientId: null, clientSecret: null };
    // RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
    return {
      clientAuth: "basic",
      clientId: formDecode(decoded.slice(0, colon)),
      clientSecret: formDecode(decoded.slice(colon + 1)),
    };
  }
  if (params?.client_id !== undefined) {
    return {
      clientAuth: "body",
      clientId: params.client_id,
      clientSecret: params.client_secret ?? null,
    };
  }
  return { clientAuth: null, clientId: null, clientSecret: null };
}

function formDecode(value: string): string | null {
  try {
    return decodeURIComponent(value.replace(/\+/g, " "));
  } catch {
    return null;
  }
}

function parseParams(raw: string, contentType: string | null): Record<string, string> | null {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase();
  if (type === "application/x-www-form-urlencoded") {
    return Object.fromEntries(new URLSearchParams(raw));
  }
  if (type === "application/json") {
    try {
      const value: unknown = JSON.parse(raw);
      if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
      const params: Record<string, string> = {};
      for (const [key, item] of Object.entries(value)) {
        if (typeof item === "string") params[key] = item;
        else if (typeof item === "number" || typeof item === "boolean") params[key] = String(item);
      }
      return params;
    } catch {
      return null;
    }
  }
  return null;
}

const ENDLESS_CHUNK = Buffer.from(`"${"x".repeat(65_534)}",`);

/** Writes with backpressure, so the mock holds one chunk however long it runs. */
function sendEndless(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "application/json" });
  res.write('{"access_token":[');
  const pump = () => {
    while (!res.destroyed) {
      if (!res.write(ENDLESS_CHUNK)) return void res.once("drain", pump);
    }
  };
  pump();
}

function scriptedReply(answer: CannedAnswer): Reply {
  const headers: Record<string, string> = {};
  let body = "";
  if (answer.body !== undefined) {
    if (typeof answer.body === "string") {
      body = answer.body;
      headers["content-type"] = "text/plain";
    } else {
      body = JSON.stringify(answer.body);
      headers["content-type"] = "application/json";
    }
  } else if (answer.error !== undefined) {
    body = JSON.stringify({ error: answer.error, error_description: answer.errorDescription });
    headers["content-type"] = "application/json";
  }
  if (answer.retryAfter !== undefined) headers["retry-after"] = answer.retryAfter;
  for (const [name, value] of Object.entries(answer.headers ?? {})) {
    headers[name.toLowerCase()] = value;
  }
  return { status: answer.status, headers, body };
}

/** RFC 7636 §4.6: the S256 transform of the verifier equals the stored challenge. */
function pkceMatches(verifier: string | undefined, challenge: string): boolean {
  if (verifier === undefined || !/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) return false;
  return createHash("sha256").update(verifier, "ascii").digest("base64url") === challenge;
}

function page(status: number, html: string): Reply {
  return {
    status,
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
    body: `<!doctype html><title>Mock OAuth provider</title><p>${html}</p>`,
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function oauthError(status: number, error: string, description?: string): Reply {
  return json(status, { error, error_description: description });
}

function json(status: number, body: unknown): Reply {
  return {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
    body: JSON.stringify(body),
  };
}

function newToken(kind: "at" | "rt"): string {
  return `mock-${kind}-${randomBytes(24).toString("base64url")}`;
}

async function readBody(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
