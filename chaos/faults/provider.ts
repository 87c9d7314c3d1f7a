import type { MockProvider, ScriptedAnswer } from "@evergreen/providers/testing";
import { after, type Fault, type FaultContext, holding, type Started } from "./fault";

function pickProvider(context: FaultContext): { name: string; provider: MockProvider } {
  return context.random.next() < 0.5
    ? { name: "rotating", provider: context.rotating }
    : { name: "stable", provider: context.stable };
}

/** A standing answer on one provider for 2-6 s: every token request meanwhile gets it. */
function standing(kind: string, answer: (context: FaultContext) => ScriptedAnswer): Fault {
  return {
    kind,
    start(context): Started | null {
      const { name, provider } = pickProvider(context);
      const given = answer(context);
      const end = holding(context, `${name} answers`, async () => {
        provider.standingAnswer = given;
        await after(context.random.between(2, 6));
        provider.standingAnswer = null;
      });
      return end && { target: `${name} provider`, end };
    },
  };
}

/** 429 with `Retry-After` 1-4 s: the integration cools down, no attempt is spent. */
export const rateLimitStorm = standing("429 storm with Retry-After", (context) => ({
  status: 429,
  error: "rate_limited",
  retryAfter: String(context.random.int(1, 4)),
}));

/** 500, 502 or 503: transient, retried with backoff. */
export const serverErrors = standing("5xx burst", (context) => ({
  status: context.random.pick([500, 502, 503]),
  error: "server_error",
}));

/**
 * Every answer of one provider delayed past REFRESH_TIMEOUT_MS for 1-3 s. The provider has
 * already refreshed (and rotated) when the client gives up, as a slow real one has: at the
 * rotating provider each refresh in flight then goes in doubt (ADR 0016): Box connections
 * stop (`needs_reauth`, nothing resent), Xero grants resend inside their grace.
 */
export const latencySpike: Fault = {
  kind: "provider latency > REFRESH_TIMEOUT_MS",
  start(context): Started | null {
    const { name, provider } = pickProvider(context);
    let span: { from: number; to: number } | null = null;
    const end = holding(context, `${name} latency`, async () => {
      const from = Date.now();
      provider.latencyMs = context.refreshTimeoutMs + 1_000;
      await after(context.random.between(1, 3));
      provider.latencyMs = 0;
      // Answers delayed until now are written after the client has given up.
      span = { from, to: Date.now() };
    });
    return (
      end && {
        target: `${name} provider`,
        end,
        losesAnswers: () => (name === "rotating" ? span : null),
      }
    );
  },
};

/**
 * 4-10 chosen grants (both providers) get their next answer dropped after the provider has
 * refreshed: the request hangs until the client's timeout. A rotating grant is lost by it
 * (nothing the client can do without reuse grace); a stable one just retries.
 */
export const droppedAnswers: Fault = {
  kind: "answer dropped after rotating",
  start(context): Started | null {
    const live = context.members.filter(
      (member) =>
        !context.revokedGrants.has(member.grantId) && !context.droppedGrants.has(member.grantId),
    );
    const chosen = context.random.shuffle(live).slice(0, context.random.int(4, 10));
    for (const member of chosen) {
      context.droppedGrants.add(member.grantId);
      member.provider.failNext(1, { hang: true, applyRefresh: true }, { grantId: member.grantId });
    }
    return { target: `${chosen.length} grants`, end: Promise.resolve() };
  },
};
