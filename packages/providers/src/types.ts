/** Every provider strategy Evergreen knows; `oauth2` is the generic one. */
export const PROVIDER_IDS = [
  "oauth2",
  "google",
  "microsoft",
  "amazon",
  "spotify",
  "discord",
  "github",
  "xero",
  "zoom",
  "dropbox",
  "linkedin",
  "notion",
  "box",
  "pinterest",
  "slack",
  "slack_user",
  "salesforce",
  "hubspot",
  "intuit",
  "atlassian",
  "shopify",
  "strava",
  "twitch",
  "reddit",
  "zoho",
  "okta",
  "x",
] as const;

export type ProviderId = (typeof PROVIDER_IDS)[number];

export function isProviderId(value: string): value is ProviderId {
  return (PROVIDER_IDS as readonly string[]).includes(value);
}

/** How the client authenticates at the token endpoint (RFC 6749 §2.3.1). */
export type ClientAuth = "basic" | "body";

/** Encoding of the token request body. */
export type BodyFormat = "form" | "json";

/** What the refresh needs from the integration row (secrets already decrypted). */
export interface IntegrationSettings {
  provider: ProviderId;
  clientId: string;
  clientSecret: string;
  /** Overrides the definition's token URL; required for `oauth2`. May hold `{placeholders}`. */
  tokenUrl?: string | null;
  /** Overrides the definition's client authentication. */
  clientAuth?: ClientAuth | null;
  /** Overrides the definition's body format. */
  bodyFormat?: BodyFormat | null;
  scopes?: readonly string[];
  /** Overrides the definition's authorization URL; required for `oauth2`'s connect flow. */
  authorizationUrl?: string | null;
  /** Added to the authorization URL after the definition's own parameters. */
  authorizationParams?: Readonly<Record<string, string>>;
  /** Overrides the definition's revocation URL; gives `oauth2` one (RFC 7009). */
  revocationUrl?: string | null;
}

/** What an authorization URL needs from the integration: no secret. */
export type AuthorizationSettings = Pick<
  IntegrationSettings,
  "provider" | "clientId" | "scopes" | "authorizationUrl" | "authorizationParams"
>;

/** The refresh_token grant of one connection. */
export interface RefreshGrant {
  refreshToken: string;
  /** Connection metadata; fills URL placeholders such as `tenant` or `region`. */
  metadata?: Record<string, unknown>;
}

/**
 * Which `http://` token URLs to accept: none (`false`), any (`true`, tests and local
 * mocks only: a refresh request carries the client secret and the refresh token in clear
 * text), or only those on this machine (`"loopback"`: the request never leaves the host).
 */
export type InsecureTokenUrls = boolean | "loopback";

export interface BuildRefreshRequestOptions {
  /** @defaultValue false */
  allowInsecureTokenUrls?: InsecureTokenUrls;
}

/** The authorization_code grant (RFC 6749 §4.1.3) of a user who has just consented. */
export interface CodeGrant {
  code: string;
  /** The redirect_uri of the authorization request, sent again as the RFC requires. */
  redirectUri: string;
  /** The PKCE verifier (RFC 7636) whose S256 challenge the authorization request carried. */
  codeVerifier?: string | null;
  /** Connection metadata; fills URL placeholders such as `tenant` or `region`. */
  metadata?: Record<string, unknown>;
}

/** What the user's browser is sent to, to consent (RFC 6749 §4.1.1). */
export interface AuthorizationRequest {
  /** Evergreen's callback, registered with the provider. */
  redirectUri: string;
  /** The opaque value the callback must bring back. */
  state: string;
  /** Replaces the integration's scopes when given; the definition's `ensureScopes` are added. */
  scopes?: readonly string[] | undefined;
  /** Sent as an S256 challenge when the provider accepts PKCE; ignored otherwise. */
  codeVerifier?: string | null;
  /** Connection metadata; fills URL placeholders such as `tenant` or `region`. */
  metadata?: Record<string, unknown>;
}

/** The HTTP request to send; the caller performs it. */
export interface TokenRequest {
  url: string;
  method: "POST";
  /** Lower-case names: content-type, accept, authorization (Basic) when basic, extras. */
  headers: Record<string, string>;
  /** Form-urlencoded or JSON text. */
  body: string;
}

/** What the token endpoint answered. Header names may be in any case. */
export interface ProviderAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export type RefreshResult =
  | {
      outcome: "success";
      accessToken: string;
      /** null: the provider sent none; keep the stored one. */
      refreshToken: string | null;
      tokenType: string;
      /** null: the access token does not expire. */
      expiresAt: Date | null;
      scope: string | null;
      /** When the refresh token itself dies (GitHub Apps `refresh_token_expires_in`), if told. */
      refreshTokenExpiresAt: Date | null;
      /** The definition's `appValues.answer` fields the answer carried (instance_url...). */
      appValues?: Readonly<Record<string, string>>;
    }
  | {
      outcome: "invalid_grant" | "invalid_client" | "unknown";
      errorCode: string;
      message: string;
    }
  | {
      outcome: "transient";
      errorCode: string;
      message: string;
      /**
       * The answer's `Retry-After` (RFC 9110 §10.2.3, mostly a 503's), capped at an hour: it
       * bounds the retry's backoff from below. Absent: the answer stated none.
       */
      retryAfterMs?: number;
    }
  | { outcome: "rate_limited"; errorCode: string; message: string; retryAfterMs: number | null };

export type RefreshOutcome = RefreshResult["outcome"];

/** Outcomes an error code can map to. */
export type ErrorOutcome = Exclude<RefreshOutcome, "success">;

/**
 * A `{name}` in a token URL. The value comes from connection metadata under the same name,
 * else the default; it is validated so that metadata cannot point a refresh (which carries
 * the client secret) at another host or path.
 */
export type PlaceholderRule =
  | {
      /** The value is substituted as is and must match (anchored pattern). */
      readonly pattern: RegExp;
      readonly default: string;
    }
  | {
      /** The value must be one of the keys; the mapped text is substituted. */
      readonly values: Readonly<Record<string, string>>;
      readonly default: string;
    };

/**
 * Where a provider's error answer keeps its code and its description. RFC 6749 §5.2 says
 * `error` and `error_description`; HubSpot says `status` and `message`, Strava nests them
 * in `errors[0]`. Each entry is a dot path (`errors.0.resource`: a number indexes an
 * array); the first that holds a non-empty string wins.
 */
export interface ErrorShape {
  readonly codeFields: readonly string[];
  readonly descriptionFields: readonly string[];
}

/**
 * Where an answer says how long to wait before asking again, and in what unit. Vendor
 * headers differ: epoch seconds (X `x-rate-limit-reset`, Okta, Discord `X-RateLimit-Reset`)
 * against seconds from now (Reddit `x-ratelimit-reset`, Discord `X-RateLimit-Reset-After`).
 * Every one becomes the same wait in milliseconds, as `Retry-After` does.
 */
export type RateLimitSource =
  | {
      /** Header name, any case. */
      readonly header: string;
      /**
       * `retry_after`: RFC 9110 delay-seconds or HTTP-date; `seconds` / `milliseconds`: a
       * delay; `epoch_seconds`: the moment the window resets.
       */
      readonly unit: "retry_after" | "seconds" | "milliseconds" | "epoch_seconds";
    }
  | {
      /** A field of the JSON body (Discord's float `retry_after`), as a dot path. */
      readonly field: string;
      readonly unit: "seconds";
    };

/**
 * Values an app needs later to call the provider's API, kept in the connection's metadata
 * and returned with its token as `extra` (GET /v1/connections/:id/token). Each name is
 * both where the value comes from and the key it is kept under.
 */
export interface AppValues {
  /** Fields of the token answer: Salesforce `instance_url`, Zoho `api_domain`. */
  readonly answer: readonly string[];
  /** Parameters of the OAuth callback: Intuit `realmId`, Zoho `location`, Shopify `shop`. */
  readonly callback: readonly string[];
}

/** Reclassifies an error whose code is generic but whose description says more. */
export interface DescriptionRule {
  readonly error: string;
  readonly pattern: RegExp;
  readonly outcome: ErrorOutcome;
}

/** How the optional `scope` parameter of the refresh request (RFC 6749 §6) is sent. */
export type ScopeRule =
  /** Never sent: the refreshed token keeps the scopes originally granted. */
  | { readonly send: "never" }
  /** Integration scopes joined by spaces, plus `ensure` entries; omitted when none configured. */
  | { readonly send: "configured"; readonly ensure: readonly string[] };

/** How a provider's authorization endpoint is addressed (RFC 6749 §4.1.1). */
export interface AuthorizationRule {
  /** May hold `{placeholders}`; null when the integration must supply it. */
  readonly url: string | null;
  /**
   * Placeholders of `url` beyond the definition's own, or in place of them (Amazon signs
   * users in on other hosts than its token endpoints, chosen by the same region).
   */
  readonly placeholders: Readonly<Record<string, PlaceholderRule>>;
  /** Added to whatever scopes are asked for. */
  readonly ensureScopes: readonly string[];
  /** Added to every authorization URL. */
  readonly params: Readonly<Record<string, string>>;
  /** The parameter that carries them: `scope`, or Slack's `user_scope` for user tokens. */
  readonly scopeParam: "scope" | "user_scope";
  /** Joins the scopes: a space (RFC 6749 §3.3), or a comma where the provider wants one (Shopify, Strava, Zoho). */
  readonly scopeSeparator: " " | ",";
  /** The endpoint accepts PKCE with S256 (RFC 7636). */
  readonly pkce: boolean;
}

/**
 * How a grant is revoked at the provider, where it can be. Data, like the rest of a
 * definition: buildRevocationRequest turns it into a request.
 */
export type RevocationRule =
  | {
      /**
       * RFC 7009: a POST of the form `token` + `token_type_hint` to `url`, the client
       * authenticating as at the token endpoint (§2.1: `token_endpoint`), or not at all
       * (`none`, Google: the token alone names the grant).
       */
      readonly kind: "rfc7009";
      /** Null when the integration must supply it (`oauth2`). */
      readonly url: string | null;
      readonly clientAuth: "token_endpoint" | "none";
      /** Notion takes `{"token": ...}` as JSON, as all its API. @defaultValue "form" */
      readonly bodyFormat?: BodyFormat;
    }
  | {
      /**
       * GitHub's app-grant DELETE: basic auth with client_id:client_secret and a JSON body
       * `{"access_token": ...}`; `{client_id}` in the URL is the integration's client id.
       * It takes only an access token.
       */
      readonly kind: "github_grant";
      readonly url: string;
    }
  | {
      /**
       * A POST without body, the access token as Bearer: the token revokes itself and its
       * grant (Dropbox `/2/auth/token/revoke`).
       */
      readonly kind: "bearer";
      readonly url: string;
    };

/** A documented client id shape; `rule` completes "clientId: <displayName> client ids ...". */
export interface ClientIdFormat {
  readonly pattern: RegExp;
  readonly rule: string;
}

/** A rotated-away refresh token's documented lease of life (see `reuseGrace`). */
export type ReuseGrace = number | "until_new_token_used";

/** Declarative description of one provider's grants. */
export interface ProviderDefinition {
  readonly id: ProviderId;
  readonly displayName: string;
  /** May hold `{placeholders}`; null when the integration must supply it. */
  readonly tokenUrl: string | null;
  readonly placeholders: Readonly<Record<string, PlaceholderRule>>;
  readonly clientAuth: ClientAuth;
  readonly bodyFormat: BodyFormat;
  readonly scope: ScopeRule;
  /** Added to every request body. */
  readonly extraParams: Readonly<Record<string, string>>;
  /**
   * Added to every request; lower-case names. `{client_id}` in a value is the integration's
   * client id (Reddit wants a User-Agent unique to the app).
   */
  readonly headers: Readonly<Record<string, string>>;
  /** Access token lifetime when the answer states none; null means "does not expire". */
  readonly fallbackLifetimeSeconds: number | null;
  /**
   * Documentation: the provider reports errors as HTTP 200 with an `error` field.
   * classifyAnswer treats an `error` field in any 2xx body as an error, for every provider.
   */
  readonly errorsInOkBody: boolean;
  /** Where error answers keep their code and description. */
  readonly errorShape: ErrorShape;
  /**
   * Provider error codes beyond RFC 6749 §5.2, mapped to outcomes: Slack's
   * `invalid_refresh_token`, HubSpot's `BAD_REFRESH_TOKEN`, Zoho's throttling reported as
   * `Access Denied` (transient).
   */
  readonly errorCodes: Readonly<Record<string, ErrorOutcome>>;
  readonly descriptionRules: readonly DescriptionRule[];
  /** Where a rate-limited answer says how long to wait, first match wins. */
  readonly rateLimitSources: readonly RateLimitSource[];
  /** Provider values the app needs later (instance URL, API domain, company id). */
  readonly appValues: AppValues;
  /**
   * Where a code exchange's answer keeps the tokens, when not at its top level: Slack's
   * install answer holds the user token in `authed_user`. Refresh answers are read at the
   * top level. Null: the top level.
   */
  readonly exchangeAnswerAt: string | null;
  /**
   * Documentation: each refresh returns a new refresh token and the old one dies (or should
   * be treated as dead). A lost answer then means re-authorization, so the new tokens must be
   * persisted before anything else. `"learned"`: the generic definition cannot know, and
   * each integration's refresh answers tell (docs/adr/0016).
   */
  readonly rotatesRefreshToken: boolean | "learned";
  /**
   * How long a rotated-away refresh token stays usable, as the provider documents it: seconds
   * after the rotation, `"until_new_token_used"` (the previous one works until its successor
   * is first used), or null (no grace: a rotated-away token is dead, or its reuse revokes the
   * grant). Decides what a refresh "in doubt" (its answer lost) may do: resend the old token
   * inside the window, or never again (docs/adr/0016). Meaningful when the token rotates.
   */
  readonly reuseGrace: ReuseGrace | null;
  /**
   * The shape the provider documents for client ids, checked when an integration is
   * registered (a typo found then, not at the first refresh); null where none is documented.
   */
  readonly clientIdFormat: ClientIdFormat | null;
  /** Where users consent, for the connect flow. */
  readonly authorization: AuthorizationRule;
  /** How a grant is revoked on delete; null where the provider offers no way (the file says why). */
  readonly revocation: RevocationRule | null;
  /** How an access token is checked at the provider; null when it offers no way. */
  readonly validation: ValidationRule | null;
}

/**
 * How a provider tells whether an access token is alive, as data (see validation.ts):
 * - `tokeninfo`: Google's token information endpoint, the token in a form body;
 * - `check_token`: GitHub's check-token call, client credentials as Basic auth and the token
 *   in a JSON body, 404 for a dead token;
 * - `identity`: a cheap call for the user's own profile with the token as Bearer; 401 says
 *   the token is dead.
 * URLs may hold `{placeholders}` of the definition (and `{client_id}`).
 */
export type ValidationRule =
  | { readonly kind: "tokeninfo"; readonly url: string }
  | { readonly kind: "check_token"; readonly url: string }
  | {
      readonly kind: "identity";
      readonly url: string;
      /** Dropbox's RPC endpoints take a POST without body. @defaultValue "GET" */
      readonly method?: "GET" | "POST";
      /** Added to the request; lower-case names (Notion's `notion-version`). */
      readonly headers?: Readonly<Record<string, string>>;
      /**
       * A JSON field that is `false` in a 2xx answer for a dead token: Slack's Web API answers
       * `200 {"ok": false, "error": "invalid_auth"}` where others answer 401.
       */
      readonly okField?: string;
      /** The Authorization scheme: `Bearer`, or Twitch's `OAuth` at /oauth2/validate. */
      readonly scheme?: "Bearer" | "OAuth";
    };
