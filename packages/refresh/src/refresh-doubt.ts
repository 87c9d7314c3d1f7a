import type { EgressFailureCode } from "@evergreen/egress";
import type { ProviderDefinition } from "@evergreen/providers";
import type { RefreshIntegration } from "./connection-store";

/**
 * A refresh "in doubt" (docs/adr/0016): a rotating provider's answer was lost after the
 * refresh token was sent (or its sender died holding it), so the provider may have rotated
 * it, and the new one is lost with the answer. What the next refresh may do with the stored
 * (maybe rotated-away) token:
 * - `none`: nothing is in doubt, an ordinary refresh;
 * - `grace`: inside the provider's documented reuse grace, resending is safe;
 * - `closed`: no grace, or it has passed: the token is never sent again (a rotated-away
 *   token sent again is what revokes grants), and the connection needs authorizing again.
 */
export type DoubtStage = "none" | "grace" | "closed";

/**
 * Failures after which the request may have reached the provider while its answer did not
 * reach us (`interrupted`: the connection broke after the whole request was sent).
 * `unreachable` is not one: it is a failure before the request was sent (DNS, connection
 * refused, TLS) or an answer that is no HTTP, and treating every such blip as a possible
 * rotation would stop grants over network weather.
 */
export const LOST_ANSWERS: ReadonlySet<EgressFailureCode> = new Set<EgressFailureCode>([
  "timeout",
  "response_too_large",
  "interrupted",
]);

/**
 * The share of a grace window in seconds that a resend may use: the rest covers the
 * difference between our clock and the provider's and the request's transit (Okta's
 * default window is 30 s).
 */
const GRACE_USABLE_SHARE = 0.9;

export function doubtStage(
  inDoubtSince: Date | null,
  definition: Pick<ProviderDefinition, "reuseGrace">,
  now: Date,
): DoubtStage {
  if (inDoubtSince === null) return "none";
  const end = graceEnd(inDoubtSince, definition.reuseGrace);
  return end !== null && end > now ? "grace" : "closed";
}

/**
 * Until when a token sent at `since` may be resent; far future for a grace lasting until the
 * successor is used (it never is: the successor was lost), null without grace.
 */
export function graceEnd(since: Date, grace: ProviderDefinition["reuseGrace"]): Date | null {
  if (grace === null || grace === 0) return null;
  if (grace === "until_new_token_used") return new Date(8.64e15);
  return new Date(since.getTime() + grace * 1000 * GRACE_USABLE_SHARE);
}

/**
 * Whether a lost answer of this integration's grants may have rotated the refresh token: as
 * the definition documents, or, for the generic definition, as its operator declared
 * (`refreshTokenRotation`), else as the integration's answers have shown
 * (`refreshTokensRotate`, learned from its first refreshes). Before any answer says, a
 * generic integration is taken not to rotate: a resend is then what a non-rotating server
 * needs, and at a rotating one its grant was lost with the answer anyway.
 */
export function mayRotate(
  definition: Pick<ProviderDefinition, "rotatesRefreshToken">,
  integration: Pick<RefreshIntegration, "refreshTokensRotate" | "refreshTokenRotation">,
): boolean {
  if (definition.rotatesRefreshToken !== "learned") return definition.rotatesRefreshToken;
  if (integration.refreshTokenRotation === "rotates") return true;
  if (integration.refreshTokenRotation === "reusable") return false;
  return integration.refreshTokensRotate === true;
}

/** lastError message when a lost answer puts a refresh in doubt inside a reuse grace. */
export function inDoubtMessage(definition: ProviderDefinition): string {
  const window =
    definition.reuseGrace === "until_new_token_used"
      ? "until its successor is used"
      : `for ${definition.reuseGrace} s after the rotation`;
  return `the token endpoint's answer was lost after the refresh token was sent; ${definition.displayName} may have rotated it but documents the old one as reusable ${window}, so it is resent within that window`;
}

/** lastError message when the provider refuses a refresh token that was in doubt. */
export function doubtConfirmedMessage(providerMessage: string): string {
  return `the provider refused the refresh token whose earlier answer was lost: it had rotated it and the new one was lost with that answer; the user must authorize again (${providerMessage})`;
}

/**
 * lastError message when a refresh in doubt stops: the token is not sent again, since
 * sending a rotated-away one is what revokes grants.
 */
export function doubtClosedMessage(definition: ProviderDefinition): string {
  const why =
    definition.reuseGrace === null || definition.reuseGrace === 0
      ? "documents no reuse grace"
      : "no longer accepts it (its reuse grace has passed)";
  return `the token endpoint's answer to a refresh was lost after the refresh token was sent (or the process sending it stopped first): ${definition.displayName} may have rotated it and ${why}, and a rotated-away token sent again can revoke the grant, so it is not sent again; the user must authorize again`;
}
