import { setTimeout as delay } from "node:timers/promises";
import type { Fleet } from "./fleet";
import type { Member } from "./population";
import type { Random } from "./random";

/** A token the api served that the provider did not accept at that moment. */
export interface BadToken {
  readonly connectionId: string;
  readonly grantId: string;
  readonly at: number;
}

export interface ReaderFigures {
  requests: number;
  /** HTTP status (or `network`) to count. */
  byStatus: Record<string, number>;
  served: number;
  invalid: BadToken[];
  /** Answers 500 and up other than 503 (an outage is a 503 with Retry-After): when, which. */
  serverErrors: { at: number; status: number; error: string }[];
}

/**
 * Apps asking for tokens throughout (10 a second, any running api): `minValidity` 5 s, or
 * 20 s so that connections in their last 20 s are refreshed by the api while the workers
 * may be about to, the race the lock and the claim are for. Every token served is checked
 * at the provider.
 */
export async function readTokens(
  fleet: Fleet,
  members: readonly Member[],
  apiKey: string,
  random: Random,
  signal: AbortSignal,
): Promise<ReaderFigures> {
  const figures: ReaderFigures = {
    requests: 0,
    byStatus: {},
    served: 0,
    invalid: [],
    serverErrors: [],
  };
  while (!signal.aborted) {
    await delay(100, undefined, { signal }).catch(() => {});
    const apis = fleet.slotsOf("api").filter((slot) => slot.state === "running");
    if (apis.length === 0 || signal.aborted) continue;
    const api = random.pick(apis);
    const member = random.pick(members);
    const minValidity = random.next() < 0.5 ? 5 : 20;
    figures.requests += 1;
    const url = `http://127.0.0.1:${api.port}/v1/connections/${member.connectionId}/token?minValidity=${minValidity}`;
    let status = "network";
    try {
      const answer = await fetch(url, {
        headers: { authorization: `Bearer ${apiKey}` },
        signal: AbortSignal.timeout(10_000),
      });
      status = String(answer.status);
      const body = (await answer.json()) as { accessToken?: string; error?: string };
      if (answer.status >= 500 && answer.status !== 503) {
        figures.serverErrors.push({
          at: Date.now(),
          status: answer.status,
          error: body.error ?? "",
        });
      }
      if (answer.ok && body.accessToken) {
        figures.served += 1;
        if (!member.provider.isAccessTokenValid(body.accessToken)) {
          figures.invalid.push({
            connectionId: member.connectionId,
            grantId: member.grantId,
            at: Date.now(),
          });
        }
      }
    } catch {
      // The api killed or paused mid-request: counted under its status.
    }
    figures.byStatus[status] = (figures.byStatus[status] ?? 0) + 1;
  }
  return figures;
}
