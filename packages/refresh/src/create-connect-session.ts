import { createHash, randomBytes, randomUUID } from "node:crypto";
import {
  buildAuthorizationUrl,
  checkTokenUrlPlaceholders,
  isProviderId,
  PROVIDERS,
  ProviderConfigError,
} from "@evergreen/providers";
import type { ExchangeDeps } from "./exchange-code";
import { integrationGoneSinceRead, UnknownIntegrationError } from "./register-connection";
import { isReturnUrlAllowed } from "./return-urls";
import { sealCodeVerifier } from "./token-cipher";

/** RFC 6749 §10.12 asks for a state that cannot be guessed: 256 random bits. */
const STATE_BYTES = 32;
/** How long a user has to consent (SPEC §3). */
const CONNECT_SESSION_TTL_MS = 600_000;

/** A connect flow an app starts for one of its users. */
export interface ConnectSessionRequest {
  /** The integration's key. */
  readonly integration: string;
  readonly externalId: string;
  /** Where the user's browser goes when the flow ends; must pass the integration's returnUrls. */
  readonly returnUrl: string;
  /** Replaces the integration's scopes for this authorization. */
  readonly scopes?: readonly string[] | undefined;
  /** Becomes the connection's metadata; also fills URL placeholders (tenant, region). */
  readonly metadata?: Record<string, unknown> | undefined;
  /** Evergreen's callback, `${PUBLIC_URL}/oauth/callback`. */
  readonly redirectUri: string;
}

export interface ConnectSession {
  /** The provider's authorization URL, to send the user's browser to. */
  readonly url: string;
  readonly expiresAt: Date;
}

export class ReturnUrlNotAllowedError extends Error {
  override name = "ReturnUrlNotAllowedError";
  constructor() {
    super("not in the integration's returnUrls");
  }
}

/** How a state is found in the table: only its hash is stored. */
export function stateHash(state: string): string {
  return createHash("sha256").update(state, "utf8").digest("base64url");
}

/**
 * Starts a connect flow: a single-use state bound to this user, integration and return URL,
 * stored server-side for 10 minutes, with a PKCE verifier (sealed like every secret) for
 * providers that accept one, and the provider's authorization URL carrying both.
 *
 * @throws UnknownIntegrationError, ReturnUrlNotAllowedError, ProviderConfigError (the
 * integration has no usable authorization URL, or the metadata fills it badly).
 */
export async function createConnectSession(
  deps: Pick<ExchangeDeps, "prisma" | "keyRing" | "settings" | "now">,
  input: ConnectSessionRequest,
): Promise<ConnectSession> {
  const { prisma, keyRing } = deps;
  const integration = await prisma.integration.findUnique({ where: { key: input.integration } });
  if (!integration) throw new UnknownIntegrationError(input.integration);
  if (!isReturnUrlAllowed(integration.returnUrls, input.returnUrl)) {
    throw new ReturnUrlNotAllowedError();
  }
  const { provider } = integration;
  if (!isProviderId(provider)) {
    throw new ProviderConfigError(provider, "unknown_provider", "unknown provider");
  }
  const id = randomUUID();
  const state = randomBytes(STATE_BYTES).toString("base64url");
  // RFC 7636 §4.1: 32 random octets, base64url, give the 43-character verifier it recommends.
  const codeVerifier = PROVIDERS[provider].authorization.pkce
    ? randomBytes(32).toString("base64url")
    : null;
  const scopes = input.scopes ?? integration.scopes;
  checkTokenUrlPlaceholders(PROVIDERS[provider], integration.tokenUrl, input.metadata);
  const url = buildAuthorizationUrl(
    {
      provider,
      clientId: integration.clientId,
      scopes,
      authorizationUrl: integration.authorizationUrl,
      authorizationParams: stringMap(integration.authorizationParams),
    },
    {
      redirectUri: input.redirectUri,
      state,
      codeVerifier,
      ...(input.metadata ? { metadata: input.metadata } : {}),
    },
    { allowInsecureTokenUrls: deps.settings.allowInsecureTokenUrls },
  );
  const now = (deps.now ?? (() => new Date()))();
  const expiresAt = new Date(now.getTime() + CONNECT_SESSION_TTL_MS);
  await prisma.connectSession
    .create({
      data: {
        id,
        stateHash: stateHash(state),
        integrationId: integration.id,
        externalId: input.externalId,
        returnUrl: input.returnUrl,
        redirectUri: input.redirectUri,
        scopes: [...scopes],
        ...(input.metadata ? { metadata: input.metadata as object } : {}),
        codeVerifier: codeVerifier === null ? null : sealCodeVerifier(keyRing, id, codeVerifier),
        expiresAt,
      },
    })
    .catch((error: unknown) => {
      throw integrationGoneSinceRead(error, input.integration);
    });
  return { url, expiresAt };
}

/** The stored authorization parameters: validated on the way in, read defensively. */
function stringMap(value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return {};
  return Object.fromEntries(
    Object.entries(value).filter(
      (entry): entry is [string, string] => typeof entry[1] === "string",
    ),
  );
}
