import { definitionHeaders, formEncode, resolveUrl } from "./build-refresh-request";
import { PROVIDERS } from "./registry";
import type {
  InsecureTokenUrls,
  IntegrationSettings,
  ProviderAnswer,
  TokenRequest,
  ValidationRule,
} from "./types";

/** What validating an access token needs from the integration (secrets already decrypted). */
export type ValidationSettings = Pick<
  IntegrationSettings,
  "provider" | "clientId" | "clientSecret"
> & {
  /** RFC 7662 introspection endpoint; used where set, else the provider's own way. */
  readonly introspectionUrl?: string | null;
};

/** How a validation request is read back. */
export type ValidationKind = ValidationRule["kind"] | "introspection";

export interface ValidationRequest {
  readonly kind: ValidationKind;
  /** For `identity`: the field a 2xx answer sets to `false` for a dead token (Slack's `ok`). */
  readonly okField?: string;
  readonly request: Omit<TokenRequest, "method" | "body"> & {
    method: "GET" | "POST";
    body?: string;
  };
}

export type ValidationResult =
  /** The provider knows the token and it is alive. */
  | { readonly valid: true; readonly scope: string | null; readonly expiresAt: Date | null }
  /** The provider says the token is unknown, expired or revoked. */
  | { readonly valid: false }
  /** No verdict: a 5xx, a 429, an answer of no known shape. */
  | { readonly valid: null; readonly reason: string };

/**
 * The request that checks `accessToken`, or null when neither the integration nor the
 * provider offers a way. Introspection (RFC 7662 §2.1) authenticates the client, as the
 * token endpoint does.
 *
 * @throws ProviderConfigError when the URL breaks the token URL's rules.
 */
export function buildValidationRequest(
  settings: ValidationSettings,
  accessToken: string,
  metadata: Record<string, unknown> | undefined,
  allowInsecure: InsecureTokenUrls = false,
): ValidationRequest | null {
  const definition = PROVIDERS[settings.provider];
  const basic = `Basic ${Buffer.from(
    `${formEncode(settings.clientId)}:${formEncode(settings.clientSecret)}`,
    "utf8",
  ).toString("base64")}`;
  const form = "application/x-www-form-urlencoded";
  if (settings.introspectionUrl) {
    const url = resolveUrl(
      "introspection",
      definition,
      null,
      definition.placeholders,
      settings.introspectionUrl,
      metadata,
      allowInsecure,
    );
    return {
      kind: "introspection",
      request: {
        url,
        method: "POST",
        headers: { accept: "application/json", "content-type": form, authorization: basic },
        body: new URLSearchParams({
          token: accessToken,
          token_type_hint: "access_token",
        }).toString(),
      },
    };
  }
  const rule = definition.validation;
  if (rule === null) return null;
  // Catalog URLs are reviewed code; only the client id is filled in here, encoded.
  const template = rule.url.replace("{client_id}", encodeURIComponent(settings.clientId));
  const url = resolveUrl(
    "introspection",
    definition,
    template,
    definition.placeholders,
    null,
    metadata,
    false,
  );
  switch (rule.kind) {
    case "tokeninfo":
      // In the body, not the query string Google also accepts: URLs end up in logs.
      return {
        kind: rule.kind,
        request: {
          url,
          method: "POST",
          headers: { accept: "application/json", "content-type": form },
          body: new URLSearchParams({ access_token: accessToken }).toString(),
        },
      };
    case "check_token":
      return {
        kind: rule.kind,
        request: {
          url,
          method: "POST",
          headers: {
            accept: "application/json",
            "content-type": "application/json",
            authorization: basic,
          },
          body: JSON.stringify({ access_token: accessToken }),
        },
      };
    case "identity":
      return {
        kind: rule.kind,
        ...(rule.okField === undefined ? {} : { okField: rule.okField }),
        request: {
          url,
          method: rule.method ?? "GET",
          // The provider's own headers too: Reddit refuses calls without its User-Agent.
          headers: {
            ...definitionHeaders(definition, settings.clientId),
            ...rule.headers,
            accept: "application/json",
            authorization: `${rule.scheme ?? "Bearer"} ${accessToken}`,
          },
        },
      };
    default: {
      const unknown: never = rule;
      throw new Error(`unhandled validation rule: ${JSON.stringify(unknown)}`);
    }
  }
}

const DEAD_STATUSES: Readonly<Record<ValidationKind, readonly number[]>> = {
  // Google answers 400 {"error": "invalid_token"} (or "Invalid Value") to a dead token.
  tokeninfo: [400, 401],
  // GitHub: 404 when the token is not valid for this application.
  check_token: [404],
  identity: [401],
  // RFC 7662 answers a dead token with 200 {"active": false}; an error status is ours.
  introspection: [],
};

/** Reads the provider's answer to a validation request. */
export function classifyValidation(
  kind: ValidationKind,
  answer: ProviderAnswer,
  now: Date,
  okField?: string,
): ValidationResult {
  if (DEAD_STATUSES[kind].includes(answer.status)) return { valid: false };
  if (answer.status < 200 || answer.status > 299) {
    return { valid: null, reason: `the provider answered HTTP ${answer.status}` };
  }
  const body = parseObject(answer.body);
  if (kind === "introspection") {
    if (body === null || typeof body.active !== "boolean") {
      return { valid: null, reason: "the introspection answer has no `active` boolean" };
    }
    if (!body.active) return { valid: false };
    return {
      valid: true,
      scope: typeof body.scope === "string" ? body.scope : null,
      expiresAt: typeof body.exp === "number" ? epochSeconds(body.exp) : null,
    };
  }
  if (kind === "tokeninfo") {
    const expiresIn = Number(body?.expires_in);
    return {
      valid: true,
      scope: typeof body?.scope === "string" ? body.scope : null,
      expiresAt:
        Number.isFinite(expiresIn) && expiresIn > 0
          ? new Date(now.getTime() + expiresIn * 1000)
          : null,
    };
  }
  if (kind === "check_token") {
    // GitHub lists the granted scopes as an array.
    const scopes = Array.isArray(body?.scopes)
      ? body.scopes.filter((s) => typeof s === "string")
      : null;
    return { valid: true, scope: scopes ? scopes.join(" ") : null, expiresAt: null };
  }
  if (okField !== undefined && body?.[okField] === false) return { valid: false };
  // An identity call says only that the token works; what it may do is not in the answer.
  return { valid: true, scope: null, expiresAt: null };
}

function epochSeconds(value: number): Date | null {
  const date = new Date(value * 1000);
  return Number.isFinite(date.getTime()) ? date : null;
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
