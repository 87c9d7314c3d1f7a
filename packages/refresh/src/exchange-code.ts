import type { EgressClient } from "@evergreen/egress";
import { hashId } from "@evergreen/observability";
import {
  buildCodeExchangeRequest,
  callbackAppValues,
  classifyAnswer,
  type ErrorOutcome,
  headerCredentials,
  isProviderId,
  ProviderConfigError,
} from "@evergreen/providers";
import { EGRESS_FAILURES } from "./egress-failures";
import type { RefreshSettings } from "./refresh-connection";
import {
  type RegisteredConnection,
  type RegistrationDeps,
  registerConnection,
  UnknownIntegrationError,
} from "./register-connection";
import { openClientSecret } from "./token-cipher";

/** What exchanging a code needs: registering a connection, plus the refreshes' egress. */
export interface ExchangeDeps extends RegistrationDeps {
  /** Sends the token request, under the refreshes' policy and size limit. */
  readonly egress: EgressClient;
  readonly settings: RegistrationDeps["settings"] &
    Pick<RefreshSettings, "timeoutMs" | "allowInsecureTokenUrls">;
}

/** An authorization code, handed over by the OAuth callback or by an app that ran its own. */
export interface CodeExchange {
  /** The integration's key. */
  readonly integration: string;
  readonly externalId: string;
  readonly code: string;
  /** The redirect_uri the authorization request carried. */
  readonly redirectUri: string;
  readonly codeVerifier?: string | null | undefined;
  /** Becomes the connection's metadata; also fills token URL placeholders (tenant, region). */
  readonly metadata?: Record<string, unknown> | undefined;
  /**
   * The OAuth callback's query. The provider's callback values (Intuit `realmId`, Zoho
   * `location`, Shopify `shop`) are kept in metadata, and fill placeholders of this very
   * exchange: Zoho's code is redeemed at the data centre the callback names.
   */
  readonly callbackParams?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * The provider refused the code or could not be asked. `code` is what callers show:
 * `invalid_grant` (the code, redirect URI or PKCE verifier was refused: the user must
 * start again), `integration_error` (the provider refused the client) or `exchange_failed`
 * (the provider failed, rate-limited or answered something else). Never carries a token.
 */
export class CodeExchangeError extends Error {
  override name = "CodeExchangeError";
  readonly code: "invalid_grant" | "integration_error" | "exchange_failed";
  constructor(
    readonly outcome: ErrorOutcome,
    /** The provider's error code, sanitized (`invalid_grant`, `http_503`, `timeout`...). */
    readonly providerCode: string,
    message: string,
  ) {
    super(message);
    this.code =
      outcome === "invalid_grant"
        ? "invalid_grant"
        : outcome === "invalid_client"
          ? "integration_error"
          : "exchange_failed";
  }
}

/**
 * Exchanges an authorization code at the integration's token endpoint (the refreshes'
 * provider strategy, egress policy, timeout and 64 KiB answer limit) and registers the
 * tokens as POST /v1/connections would. The one path from a code to a connection: the
 * OAuth callback and POST /v1/connections/exchange both call it.
 *
 * @throws UnknownIntegrationError, ProviderConfigError (the integration or metadata cannot
 * give a safe token URL), CodeExchangeError.
 */
export async function exchangeCode(
  deps: ExchangeDeps,
  input: CodeExchange,
): Promise<RegisteredConnection> {
  const { prisma, keyRing, settings } = deps;
  const integration = await prisma.integration.findUnique({ where: { key: input.integration } });
  if (!integration) throw new UnknownIntegrationError(input.integration);
  const { provider } = integration;
  if (!isProviderId(provider)) {
    throw new ProviderConfigError(provider, "unknown_provider", "unknown provider");
  }
  const fromCallback = input.callbackParams
    ? callbackAppValues(provider, input.callbackParams, input.metadata)
    : null;
  const metadata = fromCallback ? { ...input.metadata, ...fromCallback } : input.metadata;
  const clientSecret = openClientSecret(keyRing, integration.id, integration.clientSecret);
  const request = buildCodeExchangeRequest(
    {
      provider,
      clientId: integration.clientId,
      clientSecret,
      tokenUrl: integration.tokenUrl,
      clientAuth: integration.clientAuth,
      bodyFormat: integration.bodyFormat,
    },
    {
      code: input.code,
      redirectUri: input.redirectUri,
      codeVerifier: input.codeVerifier ?? null,
      ...(metadata ? { metadata } : {}),
    },
    { allowInsecureTokenUrls: settings.allowInsecureTokenUrls },
  );
  const answer = await deps.egress.send(request, { timeoutMs: settings.timeoutMs });
  const now = (deps.now ?? (() => new Date()))();
  const result =
    "failure" in answer
      ? EGRESS_FAILURES[answer.failure]
      : classifyAnswer(provider, answer, now, {
          grant: "authorization_code",
          fallbackLifetimeSeconds: integration.accessTokenLifetimeSeconds,
          secrets: () => [
            input.code,
            input.codeVerifier ?? "",
            clientSecret,
            ...headerCredentials(request),
          ],
        });
  const about = {
    integration: integration.key,
    provider,
    externalId: hashId(input.externalId, keyRing.deriveKey("log pseudonyms")),
  };
  if (result.outcome !== "success") {
    deps.log.warn(
      { ...about, outcome: result.outcome, errorCode: result.errorCode },
      "code exchange refused",
    );
    throw new CodeExchangeError(result.outcome, result.errorCode, result.message);
  }
  const registered = await registerConnection(deps, {
    integration: integration.key,
    externalId: input.externalId,
    accessToken: result.accessToken,
    refreshToken: result.refreshToken ?? undefined,
    // Already held to the expiry rules (fallback lifetime included) by the classifier.
    expiresAt: result.expiresAt ?? undefined,
    scope: result.scope ?? undefined,
    tokenType: result.tokenType,
    metadata: input.metadata,
    providerValues: { ...fromCallback, ...result.appValues },
    refreshTokenExpiresAt: result.refreshTokenExpiresAt ?? undefined,
  });
  deps.log.info(
    { ...about, connection: registered.connection.id, created: registered.created },
    "code exchanged",
  );
  return registered;
}
