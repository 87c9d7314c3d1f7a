import type { Connection } from "@evergreen/db";
import type { EgressFailureCode } from "@evergreen/egress";
import type { ProviderDefinition } from "@evergreen/providers";

/**
 * A refresh "in doubt" (docs/adr/0016): a rotating provider's answer was lost after the
 * refresh token was sent, so the provider may have rotated it, and the new one is lost with
 * the answer. What the next refresh may do with the stored (maybe rotated-away) token:
 * - `none`: nothing is in doubt, an ordinary refresh;
 * - `grace`: inside the provider's documented reuse grace, resending is safe;
 * - `careful`: no grace (or it has passed): the one careful resend, whose `invalid_grant`
 *   confirms that the grant is gone;
 * - `spent`: the careful resend got no verdict either; the token is never sent again.
 */
export type DoubtStage = "none" | "grace" | "careful" | "spent";

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

type DoubtRow = Pick<Connection, "inDoubtSince" | "inDoubtResent">;

export function doubtStage(
  row: DoubtRow,
  definition: Pick<ProviderDefinition, "reuseGrace">,
  now: Date,
): DoubtStage {
  if (row.inDoubtSince === null) return "none";
  const end = graceEnd(row.inDoubtSince, definition.reuseGrace);
  if (end !== null && end > now) return "grace";
  return row.inDoubtResent ? "spent" : "careful";
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

/** lastError message when a lost answer puts a refresh in doubt. */
export function inDoubtMessage(definition: ProviderDefinition): string {
  const lost = "the token endpoint's answer was lost after the refresh token was sent";
  const { reuseGrace, displayName } = definition;
  if (reuseGrace === null || reuseGrace === 0) {
    return `${lost}; ${displayName} may have rotated it and documents no reuse grace, so it is resent once, and the grant is given up only if ${displayName} refuses it`;
  }
  const window =
    reuseGrace === "until_new_token_used"
      ? "until its successor is used"
      : `for ${reuseGrace} s after the rotation`;
  return `${lost}; ${displayName} may have rotated it but documents the old one as reusable ${window}, so it is resent within that window`;
}

/** lastError message when the provider refuses a refresh token that was in doubt. */
export function doubtConfirmedMessage(providerMessage: string): string {
  return `the provider refused the refresh token whose earlier answer was lost: it had rotated it and the new one was lost with that answer; the user must authorize again (${providerMessage})`;
}

/** lastError message when the careful resend got no verdict, or was already made. */
export const DOUBT_UNRESOLVED_MESSAGE =
  "the refresh token may have been rotated by an answer that was lost, and the one careful resend got no verdict; it is not sent again: send new tokens (authorize again)";
