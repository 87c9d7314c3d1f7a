import type { Connection, Integration, PrismaClient } from "@evergreen/db";
import {
  buildValidationRequest,
  classifyValidation,
  isProviderId,
  ProviderConfigError,
} from "@evergreen/providers";
import { recordWebhookEvent } from "@evergreen/webhooks";
import { asRecord } from "./cooldown-scope";
import type { RefreshDeps, RefreshSettings } from "./refresh-connection";
import { openAccessToken, openClientSecret } from "./token-cipher";

export interface ValidationDeps extends Pick<RefreshDeps, "keyRing" | "egress" | "metrics"> {
  readonly prisma: PrismaClient;
  readonly settings: Pick<RefreshSettings, "timeoutMs" | "allowInsecureTokenUrls">;
  /** @defaultValue () => new Date() */
  readonly now?: () => Date;
}

/** SPEC-style answer of POST /v1/connections/:id/validate. */
export interface Validation {
  readonly valid: boolean;
  /** What the provider says the token may do, where it says. */
  readonly scope?: string;
  /** When the provider says the token expires, else the stored expiry. */
  readonly expiresAt?: Date;
  readonly checkedAt: Date;
  /** The connection went to `needs_reauth` on this verdict. */
  readonly revoked: boolean;
}

/** Neither the provider nor the integration offers a way to check an access token. */
export class ValidationUnsupportedError extends Error {
  override name = "ValidationUnsupportedError";
}

/** The provider gave no verdict (an outage, a rate limit, an answer of no known shape). */
export class ValidationFailedError extends Error {
  override name = "ValidationFailedError";
}

/**
 * Asks the provider whether the connection's access token is alive (issue 11). A token
 * the provider calls dead before its stored expiry means the grant was revoked (the user
 * removed the app, changed a password, an admin stepped in): the connection goes to
 * `needs_reauth` now, with its event and webhook, rather than at the next refresh, which
 * may be hours away (GitHub OAuth App tokens never refresh at all).
 *
 * An access token past its stored expiry is answered `valid: false` without asking: its
 * death says nothing about the grant, and renewing it is the refresh path's job, which
 * finds out whether the grant lives.
 *
 * Returns null when the connection does not exist.
 */
export async function validateConnection(
  deps: ValidationDeps,
  connectionId: string,
): Promise<Validation | null> {
  const connection = await deps.prisma.connection.findUnique({
    where: { id: connectionId },
    include: { integration: true },
  });
  if (!connection) return null;
  const { provider } = connection.integration;
  const count = (outcome: ValidationOutcome) =>
    deps.metrics.validationsTotal.inc({
      provider: isProviderId(provider) ? provider : "unknown",
      outcome,
    });
  try {
    const { asked, ...validation } = await validate(deps, connection);
    count(outcomeOf(validation, asked));
    return validation;
  } catch (error) {
    if (error instanceof ValidationFailedError) count("no_verdict");
    if (error instanceof ValidationUnsupportedError) count("unsupported");
    throw error;
  }
}

type ValidationOutcome = "valid" | "invalid" | "revoked" | "expired" | "no_verdict" | "unsupported";

/** `asked`: the provider gave the verdict (not a token past its stored expiry). */
function outcomeOf(validation: Validation, asked: boolean): ValidationOutcome {
  if (validation.valid) return "valid";
  if (!asked) return "expired";
  return validation.revoked ? "revoked" : "invalid";
}

async function validate(
  deps: ValidationDeps,
  connection: Connection & { integration: Integration },
): Promise<Validation & { asked: boolean }> {
  const now = deps.now ?? (() => new Date());
  const { integration } = connection;
  const started = now();
  const stored = connection.expiresAt ? { expiresAt: connection.expiresAt } : {};
  if (connection.expiresAt && connection.expiresAt <= started) {
    return { valid: false, ...stored, checkedAt: started, revoked: false, asked: false };
  }
  const request = validationRequest(deps, connection, integration);
  const answer = await deps.egress.send(request.request, { timeoutMs: deps.settings.timeoutMs });
  if ("failure" in answer) {
    throw new ValidationFailedError(`the provider could not be asked (${answer.failure})`);
  }
  const checkedAt = now();
  const verdict = classifyValidation(request.kind, answer, checkedAt, request.okField);
  if (verdict.valid === null) throw new ValidationFailedError(verdict.reason);
  if (verdict.valid) {
    await deps.prisma.connection.updateMany({
      where: { id: connection.id },
      data: { lastValidatedAt: checkedAt },
    });
    const expiresAt = verdict.expiresAt ?? connection.expiresAt;
    return {
      valid: true,
      ...(verdict.scope !== null ? { scope: verdict.scope } : {}),
      ...(expiresAt ? { expiresAt } : {}),
      checkedAt,
      revoked: false,
      asked: true,
    };
  }
  const revoked = await markRevoked(deps.prisma, connection, checkedAt);
  return { valid: false, ...stored, checkedAt, revoked, asked: true };
}

function validationRequest(
  deps: ValidationDeps,
  connection: Connection,
  integration: Integration,
): NonNullable<ReturnType<typeof buildValidationRequest>> {
  const { provider } = integration;
  if (!isProviderId(provider)) {
    throw new ValidationUnsupportedError(
      "the integration names a provider this build does not know",
    );
  }
  // Decryption errors (a key missing from the ring) throw as they are: an operator's problem.
  const accessToken = openAccessToken(deps.keyRing, connection.id, connection.accessToken);
  const clientSecret = openClientSecret(deps.keyRing, integration.id, integration.clientSecret);
  let built: ReturnType<typeof buildValidationRequest>;
  try {
    built = buildValidationRequest(
      {
        provider,
        clientId: integration.clientId,
        clientSecret,
        introspectionUrl: integration.introspectionUrl,
      },
      accessToken,
      asRecord(connection.metadata),
      deps.settings.allowInsecureTokenUrls,
    );
  } catch (error) {
    if (!(error instanceof ProviderConfigError)) throw error;
    throw new ValidationUnsupportedError(error.message);
  }
  if (!built) {
    throw new ValidationUnsupportedError(
      `provider "${provider}" offers no way to validate a token; set the integration's introspectionUrl (RFC 7662)`,
    );
  }
  return built;
}

const REVOKED = {
  code: "token_revoked",
  message: "the provider reports the access token invalid before its expiry: the grant was revoked",
};

/**
 * `needs_reauth`, with its event and webhook, in one transaction. Fenced by the version
 * read (a refresh that stored new tokens meanwhile wins: this verdict was about the old
 * token) and by any live refresh claim: a provider that kills the old access token when it
 * issues a new one would otherwise make a refresh in flight look like a revocation.
 * Only an `active` or `expired` connection is moved; one already stopped keeps its reason.
 */
async function markRevoked(
  prisma: PrismaClient,
  connection: Connection & { integration: Integration },
  at: Date,
): Promise<boolean> {
  return prisma.$transaction(async (tx) => {
    const updated = await tx.$executeRaw`
      UPDATE connections
         SET status = 'needs_reauth', version = version + 1, "nextRefreshAt" = NULL,
             "lastValidatedAt" = ${at}, "lastErrorCode" = ${REVOKED.code},
             "lastErrorMessage" = ${REVOKED.message}, "lastErrorAt" = ${at}, "updatedAt" = now()
       WHERE id = ${connection.id}::uuid AND version = ${connection.version}
         AND status IN ('active', 'expired')
         AND ("claimVersion" IS DISTINCT FROM version OR "claimExpiresAt" <= now())`;
    if (updated === 0) return false;
    await tx.connectionEvent.create({
      data: {
        connectionId: connection.id,
        integrationId: connection.integrationId,
        type: "needs_reauth",
        outcome: "revoked",
        errorCode: REVOKED.code,
        message: REVOKED.message,
      },
    });
    await recordWebhookEvent(tx, {
      type: "connection.needs_reauth",
      connectionId: connection.id,
      integration: connection.integration.key,
      externalId: connection.externalId,
      status: "needs_reauth",
      errorCode: REVOKED.code,
      errorMessage: REVOKED.message,
    });
    return true;
  });
}
