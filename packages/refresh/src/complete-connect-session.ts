import { ProviderConfigError } from "@evergreen/providers";
import { stateHash } from "./create-connect-session";
import { CodeExchangeError, type ExchangeDeps, exchangeCode } from "./exchange-code";
import { UnknownIntegrationError } from "./register-connection";
import { isReturnUrlAllowed } from "./return-urls";
import { openCodeVerifier } from "./token-cipher";

/** What the provider sent the user's browser back with (RFC 6749 §4.1.2). */
export interface ConnectCallback {
  readonly state: string;
  readonly code?: string | undefined;
  /** The provider's error code, when the user denied consent or the request failed. */
  readonly error?: string | undefined;
  /** The whole query: providers add values the app needs (Intuit `realmId`, Zoho `location`). */
  readonly params?: Readonly<Record<string, unknown>> | undefined;
}

/** Codes the app may find in `error=`: a fixed set, so nothing the provider wrote reaches it. */
export type ConnectErrorCode =
  /** RFC 6749 §4.1.2.1 codes, passed through from the provider. */
  | (typeof PROVIDER_ERRORS)[number]
  /** Any other provider error. */
  | "provider_error"
  /** The state was already used. */
  | "invalid_state"
  /** The user took longer than the session's 10 minutes. */
  | "expired_state"
  | CodeExchangeError["code"]
  /** Evergreen failed (its database, say): the user may start again. */
  | "server_error";

export type CallbackOutcome =
  /** No session has this state: there is no trusted place to send the user. */
  | { readonly kind: "unknown_state" }
  /**
   * The integration's `returnUrls` no longer admit the session's return URL (an admin took
   * it off since): no trusted place either, and the code is not exchanged.
   */
  | { readonly kind: "return_url_withdrawn" }
  /** Send the user's browser to `location`: the session's return URL with the result. */
  | {
      readonly kind: "redirect";
      readonly location: string;
      readonly result: "success" | ConnectErrorCode;
      /** The connection made or updated, on success (for the audit stream). */
      readonly connectionId?: string;
    };

const PROVIDER_ERRORS = [
  "invalid_request",
  "unauthorized_client",
  "access_denied",
  "unsupported_response_type",
  "invalid_scope",
  "server_error",
  "temporarily_unavailable",
] as const;

interface ConsumedSession {
  id: string;
  integration: string;
  externalId: string;
  returnUrl: string;
  returnUrls: string[];
  redirectUri: string;
  metadata: Record<string, unknown> | null;
  codeVerifier: string | null;
}

/**
 * Ends a connect flow at the OAuth callback: consumes the session its state names (once:
 * the UPDATE that marks it consumed is what finds it, so two callbacks with one state
 * cannot both pass), exchanges the code through exchangeCode, and says where to send the
 * user: the session's return URL with `connectionId` and `status=success`, or `error=<code>`.
 * Never a token in that URL.
 */
export async function completeConnectSession(
  deps: ExchangeDeps,
  callback: ConnectCallback,
): Promise<CallbackOutcome> {
  const { prisma, log } = deps;
  const hash = stateHash(callback.state);
  const [session] = await prisma.$queryRaw<ConsumedSession[]>`
    UPDATE connect_sessions s
       SET "consumedAt" = now()
      FROM integrations i
     WHERE s."stateHash" = ${hash} AND s."consumedAt" IS NULL AND s."expiresAt" > now()
       AND i.id = s."integrationId"
 RETURNING s.id, i.key AS integration, s."externalId", s."returnUrl", i."returnUrls",
           s."redirectUri", s.metadata, s."codeVerifier"`;
  if (!session) {
    const known = await prisma.connectSession.findUnique({
      where: { stateHash: hash },
      select: { returnUrl: true, consumedAt: true, integration: { select: { returnUrls: true } } },
    });
    if (!known) return { kind: "unknown_state" };
    if (!isReturnUrlAllowed(known.integration.returnUrls, known.returnUrl)) {
      return { kind: "return_url_withdrawn" };
    }
    return back(known.returnUrl, known.consumedAt ? "invalid_state" : "expired_state");
  }
  // Checked when the session was made, and again here: within the session's 10 minutes an
  // admin may have taken the URL off (an app's origin compromised, say).
  if (!isReturnUrlAllowed(session.returnUrls, session.returnUrl)) {
    log.warn({ integration: session.integration }, "connect flow ended: return URL withdrawn");
    return { kind: "return_url_withdrawn" };
  }
  const about = { integration: session.integration };
  if (callback.error !== undefined) {
    const code: ConnectErrorCode = (PROVIDER_ERRORS as readonly string[]).includes(callback.error)
      ? (callback.error as ConnectErrorCode)
      : "provider_error";
    log.info({ ...about, error: code }, "connect flow ended by the provider");
    return back(session.returnUrl, code);
  }
  if (!callback.code) return back(session.returnUrl, "invalid_request");
  try {
    const { connection } = await exchangeCode(deps, {
      integration: session.integration,
      externalId: session.externalId,
      code: callback.code,
      redirectUri: session.redirectUri,
      codeVerifier:
        session.codeVerifier === null
          ? null
          : openCodeVerifier(deps.keyRing, session.id, session.codeVerifier),
      metadata: session.metadata ?? undefined,
      callbackParams: callback.params,
    });
    const location = new URL(session.returnUrl);
    location.searchParams.set("connectionId", connection.id);
    location.searchParams.set("status", "success");
    location.searchParams.delete("error");
    return {
      kind: "redirect",
      location: location.toString(),
      result: "success",
      connectionId: connection.id,
    };
  } catch (error) {
    if (error instanceof CodeExchangeError) return back(session.returnUrl, error.code);
    if (error instanceof ProviderConfigError || error instanceof UnknownIntegrationError) {
      log.warn({ ...about, err: error }, "connect flow failed: integration configuration");
      return back(session.returnUrl, "integration_error");
    }
    // The user is sent back to the app, which can offer to start again, rather than left
    // on an error page of Evergreen's.
    log.error({ ...about, err: error }, "connect flow failed");
    return back(session.returnUrl, "server_error");
  }
}

function back(returnUrl: string, error: ConnectErrorCode): CallbackOutcome {
  const location = new URL(returnUrl);
  location.searchParams.set("error", error);
  location.searchParams.delete("connectionId");
  location.searchParams.delete("status");
  return { kind: "redirect", location: location.toString(), result: error };
}
