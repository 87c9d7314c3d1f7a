/** Any error answer of the Evergreen API: `{error, message}` with its HTTP status. */
export class EvergreenError extends Error {
  override name = "EvergreenError";
  constructor(
    readonly status: number,
    /** The API's code: `invalid_request`, `not_found`, `needs_reauth`, ... */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** 400: bad JSON, a failed validation or an unknown field (the message names it), or `invalid_grant` from a code exchange. */
export class InvalidRequestError extends EvergreenError {
  override name = "InvalidRequestError";
}

/** 401: no API key, or an unknown one. */
export class UnauthorizedError extends EvergreenError {
  override name = "UnauthorizedError";
}

/** 403: the key lacks the route's scope. */
export class ForbiddenError extends EvergreenError {
  override name = "ForbiddenError";
}

/** 404: no such connection, integration or route. */
export class NotFoundError extends EvergreenError {
  override name = "NotFoundError";
}

/** 409 `conflict`: e.g. deleting an integration that still has connections. */
export class ConflictError extends EvergreenError {
  override name = "ConflictError";
}

/**
 * 409 `needs_reauth`: the provider refused the grant (revoked, expired), or an answer that
 * may have rotated the refresh token was lost. Send the user
 * through OAuth again (a connect session) and the connection is `active` again.
 */
export class NeedsReauthError extends EvergreenError {
  override name = "NeedsReauthError";
}

/**
 * 409 `integration_error`: the provider refused the integration's client configuration.
 * Nothing is retried until the integration is fixed: alert whoever configures it.
 */
export class IntegrationError extends EvergreenError {
  override name = "IntegrationError";
}

/**
 * 503 (`refresh_failed`, `unavailable`, `exchange_failed`) or 429: nothing to fix, try
 * again later; Evergreen keeps retrying refreshes in the background.
 */
export class RetryLaterError extends EvergreenError {
  override name = "RetryLaterError";
  constructor(
    status: number,
    code: string,
    message: string,
    /** Seconds to wait, from `Retry-After`; undefined when the API gave none. */
    readonly retryAfter: number | undefined,
  ) {
    super(status, code, message);
  }
}

/**
 * No answer at all: the API could not be reached (refused, DNS, TLS) or did not answer
 * within `timeoutMs`. A `RetryLaterError` (status 0, code `unreachable`); the network's own
 * error is the `cause`. The request may still have been carried out: retrying a
 * registration or a refresh is safe, retrying `exchangeCode` may send a spent code (the
 * provider then refuses it, `invalid_grant`).
 */
export class UnreachableError extends RetryLaterError {
  override name = "UnreachableError";
  constructor(message: string, options: { cause: unknown }) {
    super(0, "unreachable", message, undefined);
    this.cause = options.cause;
  }
}

/** The typed error of an API answer that is not a success. */
export async function errorFromResponse(response: Response): Promise<EvergreenError> {
  const body = (await response.json().catch(() => undefined)) as
    | { error?: unknown; message?: unknown }
    | undefined;
  const code = typeof body?.error === "string" ? body.error : "unknown";
  const message =
    typeof body?.message === "string" ? body.message : `${response.status} ${response.statusText}`;
  const { status } = response;
  switch (status) {
    case 400:
      return new InvalidRequestError(status, code, message);
    case 401:
      return new UnauthorizedError(status, code, message);
    case 403:
      return new ForbiddenError(status, code, message);
    case 404:
      return new NotFoundError(status, code, message);
    case 409:
      if (code === "needs_reauth") return new NeedsReauthError(status, code, message);
      if (code === "integration_error") return new IntegrationError(status, code, message);
      return new ConflictError(status, code, message);
    case 429:
    case 503:
      return new RetryLaterError(status, code, message, retryAfterSeconds(response.headers));
    default:
      return new EvergreenError(status, code, message);
  }
}

/** `Retry-After` as seconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
function retryAfterSeconds(headers: Headers): number | undefined {
  const value = headers.get("retry-after")?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
