import type { MockProvider } from "@evergreen/providers/testing";
import type { Random } from "./random";

/** One connection the suite registered, and the provider grant behind it. */
export interface Member {
  readonly connectionId: string;
  readonly grantId: string;
  readonly provider: MockProvider;
  readonly rotating: boolean;
  /** Seconds the provider still accepts a rotated-away refresh token; null for none. */
  readonly reuseGrace: number | null;
  readonly lifetimeSeconds: number;
}

export interface PopulationOptions {
  readonly apiUrls: readonly string[];
  readonly apiKey: string;
  readonly count: number;
  /** Token lifetimes are uniform in [min, max] seconds. */
  readonly lifetimeSeconds: readonly [number, number];
  readonly rotating: MockProvider;
  readonly stable: MockProvider;
  readonly random: Random;
}

/**
 * Catalog providers whose definitions say what the mock provider does, so that the refresh
 * path treats a lost answer as the real one would (docs/adr/0016): Box rotates without reuse
 * grace, Xero rotates with a 30 min grace, the generic `oauth2` does not rotate.
 */
const SIDES = [
  { key: "chaos-rotating", provider: "box", rotating: true, reuseGrace: null },
  { key: "chaos-grace", provider: "xero", rotating: true, reuseGrace: 1800 },
  { key: "chaos-stable", provider: "oauth2", rotating: false, reuseGrace: null },
] as const;
/** Of every ten connections: four without reuse grace, one with it, five stable. */
const PLAN = [0, 2, 0, 2, 0, 2, 0, 2, 1, 2] as const;

/** Xero's client ids are 32 hexadecimal characters (its clientIdFormat). */
export const ROTATING_CLIENT_ID = "C0FFEE0000000000000000000000CAFE";

/**
 * What an app does after its OAuth callbacks: one integration per catalog provider above,
 * each with the token URL overridden to a mock provider (the rotating one serves Box and
 * Xero, each grant with that provider's reuse grace), then the connections, registered
 * through `POST /v1/connections` of one of the apis.
 */
export async function registerPopulation(options: PopulationOptions): Promise<Member[]> {
  const { apiUrls, apiKey, random } = options;
  const providers = SIDES.map((side) => ({
    ...side,
    mock: side.rotating ? options.rotating : options.stable,
  }));
  for (const { key, provider, mock } of providers) {
    await post(apiUrls[0] ?? "", apiKey, "/v1/integrations", {
      key,
      provider,
      clientId: mock.clientId,
      clientSecret: mock.clientSecret,
      tokenUrl: mock.tokenUrl,
    });
  }
  const plan = Array.from({ length: options.count }, (_, index) => {
    const side = providers[PLAN[index % PLAN.length] ?? 0] ?? providers[0];
    const [min, max] = options.lifetimeSeconds;
    return { ...(side as (typeof providers)[0]), index, lifetime: random.int(min, max) };
  });
  const members: Member[] = [];
  // A few registrations at a time per api, as apps finishing their callbacks would.
  const lanes = apiUrls.length * 8;
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      const apiUrl = apiUrls[lane % apiUrls.length] ?? "";
      for (let i = lane; i < plan.length; i += lanes) {
        const item = plan[i];
        if (!item) continue;
        const grant = item.mock.issueGrant({
          rotate: item.rotating,
          reuseGrace: item.reuseGrace,
          accessTokenTtlSeconds: item.lifetime,
        });
        const view = (await post(apiUrl, apiKey, "/v1/connections", {
          integration: item.key,
          externalId: `chaos-user-${item.index}`,
          accessToken: grant.accessToken,
          refreshToken: grant.refreshToken,
          expiresIn: grant.expiresIn,
        })) as { id: string };
        members.push({
          connectionId: view.id,
          grantId: grant.grantId,
          provider: item.mock,
          rotating: item.rotating,
          reuseGrace: item.reuseGrace,
          lifetimeSeconds: item.lifetime,
        });
      }
    }),
  );
  return members;
}

async function post(apiUrl: string, apiKey: string, path: string, body: unknown): Promise<unknown> {
  const answer = await fetch(`${apiUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await answer.text();
  if (!answer.ok) throw new Error(`POST ${path}: ${answer.status} ${text}`);
  return JSON.parse(text);
}
