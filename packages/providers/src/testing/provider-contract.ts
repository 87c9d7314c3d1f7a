import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRefreshRequest } from "../build-refresh-request";
import { classifyAnswer } from "../classify-answer";
import type { ProviderDefinition, RefreshResult } from "../types";
import {
  type AnswerShapes,
  type CannedAnswer,
  type GrantOptions,
  type MockProvider,
  startMockProvider,
} from "./mock-provider";
import { sendTokenRequest } from "./send-token-request";

type Success = Extract<RefreshResult, { outcome: "success" }>;

/**
 * How one real provider answers the refresh_token grant, as its documentation describes
 * it: the data the mock provider is configured with, and what Evergreen must make of each
 * answer. Kept beside the provider's test, never as a branch inside the mock.
 */
export interface ProviderImitation {
  /** How its grants behave: rotation, an omitted refresh token, the access token lifetime. */
  readonly grant: GrantOptions;
  /** The shape of its answers: success extras, the dead-grant and bad-client answers. */
  readonly answers: AnswerShapes;
  /**
   * What a success must classify to beyond the tokens, given the time of the request
   * (whole seconds). By default `expiresAt` is that time plus the grant's lifetime.
   */
  readonly success?: (now: Date) => Partial<Success>;
  /** Its answer to too many requests, with that provider's headers, and the wait it means. */
  readonly rateLimit: {
    readonly answer: (now: Date) => CannedAnswer;
    readonly retryAfterMs: number | null;
  };
  /** Answers outside RFC 6749 and what each must classify to. */
  readonly quirks?: readonly ImitatedQuirk[];
}

export interface ImitatedQuirk {
  /** What it shows, as the test's name: "throttling as HTTP 200 is transient". */
  readonly name: string;
  readonly answer: (now: Date) => CannedAnswer;
  readonly expected: Partial<RefreshResult>;
}

/** What extra cases of a contract get: the running mock and the real refresh round trip. */
export interface ContractContext {
  readonly mock: () => MockProvider;
  /** Builds the request, sends it over HTTP to the mock, classifies the answer. */
  readonly refresh: (
    refreshToken: string,
    options?: { now?: Date; clientSecret?: string; metadata?: Record<string, unknown> },
  ) => Promise<RefreshResult>;
}

const CLIENT_ID = "contract-client";
const CLIENT_SECRET = "contract-secret";

/**
 * The provider contract (issue 12): against a real HTTP mock provider imitating `imitation`,
 * the refresh round trip (buildRefreshRequest, HTTP, classifyAnswer) gives success
 * (rotating or not), invalid_grant for a dead grant, invalid_client for a bad client,
 * rate_limited with the provider's own wait, and the expected outcome for each quirk.
 */
export function describeProviderContract(
  definition: ProviderDefinition,
  imitation: ProviderImitation,
  extraCases?: (context: ContractContext) => void,
): void {
  describe(`${definition.id} contract`, () => {
    let mock: MockProvider | undefined;
    const running = (): MockProvider => {
      if (mock === undefined) throw new Error("the mock provider is not running");
      return mock;
    };

    beforeAll(async () => {
      mock = await startMockProvider({
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        answers: imitation.answers,
      });
    });
    afterAll(async () => {
      await mock?.close();
    });

    const refresh: ContractContext["refresh"] = async (refreshToken, options = {}) => {
      const request = buildRefreshRequest(
        {
          provider: definition.id,
          clientId: CLIENT_ID,
          clientSecret: options.clientSecret ?? CLIENT_SECRET,
          // The definition's own URL, host and all, is checked by its unit tests; here the
          // mock stands in for it. Client auth, body format and headers are the definition's.
          tokenUrl: running().tokenUrl,
        },
        { refreshToken, ...(options.metadata ? { metadata: options.metadata } : {}) },
        { allowInsecureTokenUrls: "loopback" },
      );
      return classifyAnswer(
        definition.id,
        await sendTokenRequest(request),
        options.now ?? wholeSecond(),
      );
    };

    const rotates = imitation.grant.rotate === true;
    it(`refreshes a ${rotates ? "rotating" : "non-rotating"} grant as the provider does`, async () => {
      const grant = running().issueGrant(imitation.grant);
      const now = wholeSecond();
      const result = await refresh(grant.refreshToken, { now });
      const state = running().grant(grant.grantId);
      const lifetime = imitation.grant.accessTokenTtlSeconds ?? 3600;
      expect(result).toMatchObject({
        outcome: "success",
        accessToken: state?.accessToken,
        refreshToken:
          imitation.grant.omitRefreshToken === true ? null : (state?.refreshToken ?? "missing"),
        expiresAt: new Date(now.getTime() + lifetime * 1000),
        ...imitation.success?.(now),
      });
      if (rotates) expect(state?.refreshToken).not.toBe(grant.refreshToken);
      // The definition says what the imitation does: a rotating provider must be declared so
      // (the generic one learns it from each integration's answers).
      if (definition.rotatesRefreshToken !== "learned") {
        expect(definition.rotatesRefreshToken).toBe(rotates);
      }
      const received = running().received.at(-1);
      expect(received?.clientAuth).toBe(definition.clientAuth);
      expect(received?.contentType).toBe(
        definition.bodyFormat === "json" ? "application/json" : "application/x-www-form-urlencoded",
      );
    });

    it("maps its dead-grant answer to invalid_grant", async () => {
      const grant = running().issueGrant(imitation.grant);
      running().revoke(grant.refreshToken);
      expect(await refresh(grant.refreshToken)).toMatchObject({ outcome: "invalid_grant" });
    });

    it("maps its bad-client answer to invalid_client", async () => {
      const grant = running().issueGrant(imitation.grant);
      const result = await refresh(grant.refreshToken, { clientSecret: "wrong-secret" });
      expect(result).toMatchObject({ outcome: "invalid_client" });
      // The grant is untouched: a configuration problem is not the user's.
      expect(running().grant(grant.grantId)?.refreshes).toBe(0);
    });

    it("turns its rate-limit answer into the same cooldown as Retry-After", async () => {
      const grant = running().issueGrant(imitation.grant);
      const now = wholeSecond();
      running().failNext(1, imitation.rateLimit.answer(now), { grantId: grant.grantId });
      expect(await refresh(grant.refreshToken, { now })).toEqual({
        outcome: "rate_limited",
        errorCode: expect.any(String),
        message: expect.any(String),
        retryAfterMs: imitation.rateLimit.retryAfterMs,
      });
    });

    for (const quirk of imitation.quirks ?? []) {
      it(quirk.name, async () => {
        const grant = running().issueGrant(imitation.grant);
        const now = wholeSecond();
        running().failNext(1, quirk.answer(now), { grantId: grant.grantId });
        expect(await refresh(grant.refreshToken, { now })).toMatchObject(quirk.expected);
      });
    }

    extraCases?.({ mock: running, refresh });
  });
}

/** Now, to the whole second: epoch-second headers then give exact waits. */
function wholeSecond(): Date {
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}
