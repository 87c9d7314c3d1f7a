import type { Fault, FaultContext, Started } from "./fault";

export const GRANT_REVOKED = "grant revoked at the provider";

/**
 * 3-8 grants revoked at the provider, as users revoking the app's access do: each must end
 * `needs_reauth` at its next refresh, and it is the only way a connection may get there
 * besides a lost answer at the rotating provider. Healthy once all of them are.
 */
export function revokeGrants(
  needsReauth: (connectionIds: readonly string[]) => Promise<boolean>,
): Fault {
  return {
    kind: GRANT_REVOKED,
    start(context: FaultContext): Started | null {
      const live = context.members.filter((member) => !context.revokedGrants.has(member.grantId));
      const chosen = context.random.shuffle(live).slice(0, context.random.int(3, 8));
      for (const member of chosen) {
        context.revokedGrants.add(member.grantId);
        const grant = member.provider.grant(member.grantId);
        if (grant) member.provider.revoke(grant.refreshToken);
      }
      const ids = chosen.map((member) => member.connectionId);
      return {
        target: `${chosen.length} grants`,
        end: Promise.resolve(),
        healthy: () => needsReauth(ids),
      };
    },
  };
}
