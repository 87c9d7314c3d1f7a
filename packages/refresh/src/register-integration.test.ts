import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { refreshConnection } from "./refresh-connection";
import { registerConnection } from "./register-connection";
import { type IntegrationRegistration, registerIntegration } from "./register-integration";
import { createRefreshHarness, type RefreshHarness } from "./testing";
import { openClientSecret } from "./token-cipher";

let h: RefreshHarness;

beforeAll(async () => {
  h = await createRefreshHarness();
});
afterAll(() => h.close());

const mockIntegration = (key: string): IntegrationRegistration => ({
  key,
  provider: "oauth2",
  clientId: h.provider.clientId,
  clientSecret: h.provider.clientSecret,
  tokenUrl: h.provider.tokenUrl,
});

describe("registerIntegration", () => {
  it("creates, then updates by key with the secret sealed for the same row", async () => {
    const first = await registerIntegration(
      { ...h.deps, prisma: h.prisma },
      {
        ...mockIntegration("twice"),
        clientSecret: "old-secret",
      },
    );
    const second = await registerIntegration(
      { ...h.deps, prisma: h.prisma },
      mockIntegration("twice"),
    );
    expect([first.created, second.created]).toEqual([true, false]);
    expect(second.integration.id).toBe(first.integration.id);
    expect(
      openClientSecret(h.keyRing, second.integration.id, second.integration.clientSecret),
    ).toBe(h.provider.clientSecret);
  });

  it("forgets what it learned about rotation when the token URL changes, not on other updates", async () => {
    const deps = { ...h.deps, prisma: h.prisma };
    const { integration } = await registerIntegration(deps, mockIntegration("learning"));
    const learned = () =>
      h.prisma.integration
        .findUniqueOrThrow({ where: { id: integration.id } })
        .then((row) => row.refreshTokensRotate);
    await h.deps.store.noteRotation(integration, true);
    await registerIntegration(deps, { ...mockIntegration("learning"), scopes: ["more"] });
    expect(await learned()).toBe(true);
    await registerIntegration(deps, {
      ...mockIntegration("learning"),
      tokenUrl: `${h.provider.tokenUrl}?elsewhere`,
    });
    expect(await learned()).toBeNull();
    // An answer to a refresh that read the integration before that change teaches nothing.
    await h.deps.store.noteRotation(integration, true);
    expect(await learned()).toBeNull();
  });

  it("seals the secret for the row that is stored when first registrations race", async () => {
    const keys = Array.from({ length: 10 }, (_, n) => `race-${n}`);
    const results = await Promise.all(
      keys.flatMap((key) => [
        registerIntegration({ ...h.deps, prisma: h.prisma }, mockIntegration(key)),
        registerIntegration({ ...h.deps, prisma: h.prisma }, mockIntegration(key)),
      ]),
    );
    for (const key of keys) {
      const pair = results.filter((r) => r.integration.key === key);
      expect(pair.map((r) => r.created).sort()).toEqual([false, true]);
      const row = await h.prisma.integration.findUniqueOrThrow({ where: { key } });
      expect(openClientSecret(h.keyRing, row.id, row.clientSecret)).toBe(h.provider.clientSecret);
      // And the proof that counts: a refresh through this integration succeeds.
      const grant = h.provider.issueGrant();
      const { connection } = await registerConnection(
        { ...h.deps, prisma: h.prisma },
        { integration: key, externalId: "u", accessToken: "a", refreshToken: grant.refreshToken },
      );
      const run = await refreshConnection(h.deps, { connectionId: connection.id, source: "api" });
      expect(run).toMatchObject({ kind: "done", outcome: "success" });
    }
  });
});
