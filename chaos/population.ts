import type { MockProvider } from "@evergreen/providers/testing";
import type { Random } from "./random";

/** One connection the suite registered, and the provider grant behind it. */
export interface Member {
  readonly connectionId: string;
  readonly grantId: string;
  readonly provider: MockProvider;
  readonly rotating: boolean;
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
 * What an app does after its OAuth callbacks: one integration per provider, then half the
 * connections at the rotating provider (no reuse grace), half at the stable one, each
 * registered through `POST /v1/connections` of one of the apis.
 */
export async function registerPopulation(options: PopulationOptions): Promise<Member[]> {
  const { apiUrls, apiKey, random } = options;
  const providers = [
    { key: "chaos-rotating", provider: options.rotating, rotating: true },
    { key: "chaos-stable", provider: options.stable, rotating: false },
  ];
  for (const { key, provider } of providers) {
    await post(apiUrls[0] ?? "", apiKey, "/v1/integrations", {
      key,
      provider: "oauth2",
      clientId: provider.clientId,
      clientSecret: provider.clientSecret,
      tokenUrl: provider.tokenUrl,
    });
  }
  const plan = Array.from({ length: options.count }, (_, index) => {
    const side = providers[index % 2] ?? providers[0];
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
        const grant = item.provider.issueGrant({
          rotate: item.rotating,
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
          provider: item.provider,
          rotating: item.rotating,
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
